"""``mytracker copy`` / ``mytracker import``: the command line of ``mytracker._copy``."""

from __future__ import annotations

import argparse
import sys

from mlflow.exceptions import MlflowException

from mytracker import _copy
from mytracker.cli._common import UsageError, add_dir_option, data_dir, fail
from mytracker.store._uri import store_uri


def add_commands(subparsers) -> None:
    copy = subparsers.add_parser(
        "copy",
        help="copy MLflow history between tracking stores (idempotent, resumable)",
        description="Copy experiments, runs (same ids), params, tags, metric histories, "
        "datasets and artifacts from SRC_URI into DST_URI. Running it again copies only "
        "what is new; an interrupted copy resumes.",
    )
    copy.add_argument("src_uri", metavar="SRC_URI",
                      help="sqlite:///PATH, file:///PATH (./mlruns), http(s)://HOST:PORT or trackio://[/DIR]")
    copy.add_argument("dst_uri", metavar="DST_URI", help="trackio://[/DIR] or sqlite:///PATH")
    _common_options(copy)
    copy.set_defaults(run=_run_copy)

    imp = subparsers.add_parser(
        "import",
        help="import MLflow history into Trackio (copy into trackio://)",
        description="Copy MLflow history from SRC_URI into a Trackio data directory.",
    )
    imp.add_argument("src_uri", metavar="SRC_URI",
                     help="an MLflow SQLite file (mlflow.db, MLflow 3's default store) or "
                     "sqlite:///PATH, file:///PATH (./mlruns), http(s)://HOST:PORT")
    add_dir_option(imp)
    _common_options(imp)
    imp.set_defaults(run=_run_import)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", action="append", metavar="NAME",
                        help="copy only this experiment (repeatable; default: all)")
    parser.add_argument("--artifact-root", metavar="URI",
                        help="artifact root for experiments the copy creates in the destination")
    parser.add_argument("--verify", action="store_true",
                        help="re-read the full metric history of runs that look up to date")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_import(args) -> int:
    try:
        args.dst_uri = store_uri(data_dir(args.dir, create=True) if args.dir else None)
    except UsageError as error:
        return fail("import", error, 2)
    return _run_copy(args, command="import")


def _run_copy(args, command: str = "copy") -> int:
    progress = _copy.Progress(enabled=False if args.no_progress else None)
    try:
        summary = _copy.copy_store(
            args.src_uri, args.dst_uri, args.experiment, artifact_root=args.artifact_root,
            progress=progress, verify=args.verify,
        )
    except KeyboardInterrupt:
        print(f"\nmytracker {command}: interrupted. Every run written so far is complete; "
              "run the same command again to resume.", file=sys.stderr)
        return 130
    except MlflowException as e:
        return fail(command, e.message)
    except OSError as e:
        return fail(command, e)
    print(summary)
    return 0
