"""The ``mytracker`` command line.

    mytracker server [--dir DIR] [--host HOST] [--port PORT] [--workers N]
    mytracker show [--dir DIR]
    mytracker copy SRC_URI DST_URI [--experiment NAME ...]
    mytracker import SRC_URI [--dir DIR] [--experiment NAME ...]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mytracker", description="Trackio as an MLflow tracking backend."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    # Each command registers itself from its own module; see `_COMMANDS`.
    for module_name in _COMMANDS:
        module = __import__(f"mytracker.{module_name}", fromlist=["add_command"])
        module.add_command(commands)
    args = parser.parse_args(argv)
    return args.run(args) or 0


# Modules that provide `add_command(subparsers)`; each sets `run=` on its parser(s).
_COMMANDS: list[str] = ["_server", "_copy", "_maintenance"]


if __name__ == "__main__":
    sys.exit(main())
