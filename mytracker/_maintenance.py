"""``mytracker close-dead-runs``: close the runs a killed training process left RUNNING."""

from __future__ import annotations

import argparse


def add_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "close-dead-runs",
        help="mark RUNNING runs whose process is gone as KILLED",
        description=(
            "A training job killed with SIGKILL (or by the OOM killer) cannot end its MLflow run, "
            "so the run stays RUNNING. This marks as KILLED every RUNNING run whose creating "
            "process on this host no longer exists, with its last metric time as end time. Runs "
            "created on other hosts or through a tracking server are left alone."
        ),
    )
    parser.add_argument("--dir", help="Trackio data directory (default: Trackio's own)")
    parser.add_argument("--dry-run", action="store_true", help="only list the runs")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from mytracker.store import build_store

    from pathlib import Path

    if args.dir and not Path(args.dir).is_dir():
        print(f"mytracker: no Trackio data directory at {args.dir}")
        return 2
    uri = f"trackio://{Path(args.dir).resolve()}" if args.dir else "trackio://"
    try:
        closed = build_store(uri).close_dead_runs(dry_run=args.dry_run)
    except MlflowException as e:
        print(f"mytracker: {e.message}")
        return 1
    verb = "would close" if args.dry_run else "closed"
    for experiment, run_id in closed:
        print(f"{verb} run {run_id} in experiment {experiment!r}")
    print(f"{len(closed)} run(s) {verb}.")
    return 0
