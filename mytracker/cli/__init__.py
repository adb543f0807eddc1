"""The ``mytracker`` command line.

    mytracker show [--dir DIR] [--project NAME]
    mytracker server [--dir DIR] [--host HOST] [--port PORT] [--workers N]
    mytracker copy SRC_URI DST_URI [--experiment NAME ...]
    mytracker import SRC_URI [--dir DIR] [--experiment NAME ...]
    mytracker close-dead-runs [--dir DIR] [--dry-run]

Every command takes ``--dir`` the same way and fails the same way: one line on stderr,
``mytracker COMMAND: error: ...``, exit status 2 for bad input and 1 for a failure while working.
"""

from __future__ import annotations

import argparse
import sys

from mytracker.cli import _copy, _maintenance, _server

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status.

    >>> main(["close-dead-runs", "--dry-run"])  # doctest: +SKIP
    """
    parser = argparse.ArgumentParser(
        prog="mytracker", description="Trackio as an MLflow tracking backend."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (_server, _copy, _maintenance):
        module.add_commands(commands)
    args = parser.parse_args(argv)
    return args.run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
