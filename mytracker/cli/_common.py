"""What every command shares: the ``--dir`` option and one way to fail."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DIR_HELP = "Trackio data directory (default: Trackio's own, $TRACKIO_DIR or $HF_HOME/trackio)"


class UsageError(Exception):
    """Bad command-line input: printed as one line, never as a traceback."""


def add_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=None, help=DIR_HELP)


def fail(command: str, error: object, status: int = 1) -> int:
    """Print ``mytracker COMMAND: error: ...`` on stderr and return the exit status (2 for bad
    input, 1 for a failure while working)."""
    print(f"mytracker {command}: error: {error}", file=sys.stderr)
    return status


def data_dir(value: str | None, *, create: bool) -> Path:
    """The absolute data directory that ``--dir`` names (default: Trackio's own), checked:
    created if `create`, else it must exist."""
    if value is None:
        from mytracker.store._uri import default_trackio_dir

        path = default_trackio_dir()
    else:
        if not value.strip():
            raise UsageError("--dir is empty")
        from mlflow.exceptions import MlflowException

        from mytracker.store._uri import directory_path

        try:  # a trackio:// URI names its directory
            path = directory_path(os.path.expanduser(value))
        except MlflowException as error:
            raise UsageError(f"--dir {value}: {error.message}") from None
    if any(char in str(path) for char in "?#%"):
        # The directory travels inside a trackio:// URI, where these characters mean more.
        raise UsageError(f"--dir {path} contains one of '?', '#', '%'; choose another path")
    if path.exists() and not path.is_dir():
        raise UsageError(f"--dir {path} exists and is not a directory")
    if not path.exists():
        if not create:
            raise UsageError(f"no Trackio data directory at {path} (--dir does not exist)")
        try:
            path.mkdir(parents=True)
        except OSError as error:
            raise UsageError(f"cannot create --dir {path}: {error.strerror}") from None
    if create and not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--dir {path} is not writable")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"--dir {path} is not readable")
    return path
