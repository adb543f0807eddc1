import sys

from mytracker.cli import main

sys.exit(main())
