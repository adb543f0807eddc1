"""``mytracker close-dead-runs``: close the runs a killed training process left RUNNING."""

from __future__ import annotations

import argparse

from mytracker.cli._common import UsageError, add_dir_option, data_dir, fail


def add_commands(commands: argparse._SubParsersAction) -> None:
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
    add_dir_option(parser)
    parser.add_argument("--dry-run", action="store_true", help="only list the runs")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from mytracker.store import build_store
    from mytracker.store._uri import store_uri

    try:
        directory = data_dir(args.dir, create=False)
    except UsageError as error:
        return fail("close-dead-runs", error, 2)
    try:
        closed = build_store(store_uri(directory)).close_dead_runs(dry_run=args.dry_run)
    except MlflowException as e:
        return fail("close-dead-runs", e.message)
    verb = "would close" if args.dry_run else "closed"
    for experiment, run_id in closed:
        print(f"{verb} run {run_id} in experiment {experiment!r}")
    print(f"{len(closed)} run(s) {verb}.")
    return 0
