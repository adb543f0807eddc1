"""Trackio's own projects and runs, as MLflow sees them: one directory, two front doors.

A project that ``trackio.init(project=...)`` made, and a run that Trackio's API logged (in such a
project or in one mytracker made), have no MLflow rows. They are still an MLflow experiment and
an MLflow run, read from what Trackio records:

- **experiment**: id ``native_experiment_id(<file stem>)`` (see ``_trackio``: derived from the
  file name, in a range the sequential ids never reach, the same in every process, written
  nowhere), name the file stem (Trackio's project name), created when its first run was, its
  artifact location where Trackio's Files view lists it;
- **run**: id Trackio's ``run_id`` (``uuid4().hex``, the shape of MLflow's), name its
  ``run_name``, params the run's config (without the keys Trackio adds itself), tags
  ``mlflow.runName``, ``mlflow.user`` (Trackio's ``_Username``; user ``unknown`` without it),
  ``trackio.group`` and ``mytracker.origin = trackio``, metrics every number in its rows (``system/<key>`` for its
  system metrics), start time Trackio's ``_Created``. Trackio records no status and no end: a
  run whose last row is younger than ``IDLE_S`` is RUNNING with no end time, else FINISHED,
  ended at its last row.

The first MLflow *write* makes them MLflow's: a write to the experiment (a new run, a tag, a
rename, a delete) adopts the file (``adopt``: mytracker's tables and the experiment row, under
Trackio's own ``<project>.lock``, keeping the derived id); a write to a run records it
(``record_run``: its MLflow rows as read at that moment, in the write's own transaction), after
which MLflow's semantics hold for it. Trackio's rows are never rewritten by either.
"""

from __future__ import annotations

import json
import os
import re
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import orjson  # a dependency of Trackio's

from mytracker.store import _dashboard, _db
from mytracker.store._db import (
    DatabaseError,
    ExperimentRow,
    LatestMetric,
    ProjectDB,
    RunRecord,
    RunRow,
    file_lock,
)
from mytracker.store._trackio import (
    ORIGIN_TAG,
    SYSTEM_STEP_KEY,
    TRACKIO_CONFIG_KEYS,
    TRACKIO_ORIGIN,
    clamped,
    mlflow_metric_key,
    ms_from_iso,
    native_experiment_id,
    number_from_json,
)

# Per open project file, the latest metrics of its Trackio runs as last read, with the file's
# version then: SQLite's data_version (moves when another connection commits) and this
# connection's total_changes (when it writes). Reading them costs every row of the run.
_LATEST: weakref.WeakKeyDictionary[ProjectDB, dict[str, tuple]] = weakref.WeakKeyDictionary()

# Trackio records no run status: a run that logged within this many seconds is RUNNING.
IDLE_S = float(os.environ.get("MYTRACKER_TRACKIO_IDLE_S", "300"))
GROUP_TAG = "trackio.group"
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")  # MLflow's run-id pattern
_SYSTEM_PREFIX = "system/"
_UNKNOWN_USER = "unknown"  # MLflow's own user name when it cannot tell (Trackio's _Username: None)


def adopted(db: ProjectDB) -> bool:
    """Whether the file holds mytracker's tables (another process may have just made them)."""
    return db._is_adopted()


def experiment(db: ProjectDB) -> ExperimentRow | None:
    """The experiment of a Trackio project file mytracker has not adopted; None for a file that
    is not a Trackio project."""
    with db.read() as conn:
        if not _db.is_trackio_project(conn):
            return None
        created = conn.execute("SELECT min(created_at) FROM configs").fetchone()[0]
    try:
        stats = [os.stat(db.path)]
        stats += [os.stat(f"{db.path}-wal")] if os.path.exists(f"{db.path}-wal") else []
        updated = max(s.st_mtime_ns for s in stats) // 1_000_000
    except FileNotFoundError:
        updated = None
    stem = db.path.stem
    return ExperimentRow(
        experiment_id=native_experiment_id(stem),
        name=stem,
        artifact_location=_dashboard.default_artifact_location(db.path),
        lifecycle_stage="active",
        creation_time=ms_from_iso(created) if created else updated,
        last_update_time=updated,
        tags={ORIGIN_TAG: TRACKIO_ORIGIN},
        native=True,
    )


@contextmanager
def trackio_lock(project_file: Path) -> Iterator[None]:
    """Trackio's own ``<project>.lock``, which its writers hold while they create, migrate or
    write the project file."""
    path = project_file.with_suffix(".lock")
    with file_lock(path, lambda e: DatabaseError(
        f"Cannot lock {path}: {e.strerror or e}; nothing was written."
    )):
        yield


def adopt(db: ProjectDB, experiment_row: ExperimentRow) -> None:
    """Make the Trackio project `db` hold `experiment_row` (as `experiment` read it) for good."""
    with trackio_lock(db.path), db.write() as conn:
        _db.adopt_experiment(conn, experiment_row._replace(native=False), _now_ms())
    db.adopted = True


def has_run(db: ProjectDB, run_id: str) -> bool:
    """Whether `run_id` is a run of Trackio's tables with no MLflow row."""
    if not _RUN_ID.match(run_id):
        return False
    with db.read() as conn:
        if not _db.is_trackio_project(conn) or not _db.has_trackio_run(conn, run_id):
            return False
        return not (adopted(db) and _db.run_state(conn, run_id) is not None)


def runs(
    db: ProjectDB, experiment_row: ExperimentRow, run_ids: Sequence[str] | None = None,
    with_metrics: bool = True,
) -> dict[str, RunRecord]:
    """Trackio's own runs in the file (those of `run_ids`, or all), as MLflow's run records;
    their latest metrics (which cost a read of every row of the run) only `with_metrics`."""
    now = _now_ms()
    with db.read() as conn:
        # First, so that it names the snapshot this transaction reads (SQLite takes both at once).
        version = (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
        if not _db.is_trackio_project(conn):
            return {}
        wanted = _db.unrecorded_run_ids(conn, adopted(db))
        if run_ids is not None:
            asked = set(run_ids)
            wanted = [i for i in wanted if i in asked]
        held = _LATEST.setdefault(db, {})
        return {
            run_id: _record(
                conn, run_id, experiment_row, now,
                _held_latest(held, conn, version, run_id) if with_metrics else None,
            )
            for run_id in wanted
            if _RUN_ID.match(run_id)
        }


def _held_latest(held: dict, conn, version: tuple, run_id: str) -> list[LatestMetric]:
    """The run's `_latest_metrics`, as last read while the file is still at `version`."""
    cached = held.get(run_id)
    if cached is None or cached[:2] != (conn, version):
        cached = held[run_id] = (conn, version, _latest_metrics(conn, run_id))
    return cached[2]


def record_run(conn, run_id: str) -> bool:
    """In the caller's write transaction in an adopted file: give a Trackio run its MLflow rows,
    as read now. Returns False if `run_id` is no run of Trackio's tables."""
    if not _RUN_ID.match(run_id) or not _db.has_trackio_run(conn, run_id):
        return False
    latest = _latest_metrics(conn, run_id)
    _db.record_run(conn, _record(conn, run_id, _db.experiment_row(conn), _now_ms(), latest))
    return True


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _param_text(value) -> str:
    # As `mlflow.log_param` would have logged the value.
    return value if isinstance(value, str) else str(value)


def _record(
    conn, run_id: str, experiment_row: ExperimentRow, now_ms: int,
    latest: list[LatestMetric] | None,
) -> RunRecord:
    from mlflow.utils.uri import append_to_uri_path

    source = _db.trackio_run(conn, run_id)
    try:
        config = json.loads(source.config) if source.config else {}
    except ValueError:
        config = {}
    if not isinstance(config, dict):
        config = {}
    created = config.get("_Created") or source.created_at or source.first_row
    start_ms = _ms_or_none(created)
    last_ms = _ms_or_none(source.last_row)
    newest = max((t for t in (start_ms, last_ms) if t is not None), default=None)
    running = newest is not None and now_ms - newest < IDLE_S * 1000
    name = source.run_name or run_id
    user = config.get("_Username")
    tags = {"mlflow.runName": name, ORIGIN_TAG: TRACKIO_ORIGIN}
    if user:
        tags["mlflow.user"] = str(user)
    if config.get("_Group"):
        tags[GROUP_TAG] = str(config["_Group"])
    params = {
        str(k): _param_text(v)
        for k, v in config.items()
        if k not in TRACKIO_CONFIG_KEYS and not str(k).startswith("_")
    }
    info = RunRow(
        run_id=run_id,
        name=name,
        user_id=str(user) if user else _UNKNOWN_USER,
        status="RUNNING" if running else "FINISHED",
        start_time=start_ms,
        end_time=None if running else (last_ms if last_ms is not None else start_ms),
        lifecycle_stage=experiment_row.lifecycle_stage,
        artifact_uri=append_to_uri_path(experiment_row.artifact_location, run_id, "artifacts"),
    )
    return RunRecord(info, params, tags, list(latest or []))


def _ms_or_none(text) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return ms_from_iso(text)
    except ValueError:
        return None


def _latest_metrics(conn, run_id: str) -> list[LatestMetric]:
    """Per key, the point MLflow calls latest: the largest (step, timestamp, value), keys in the
    order they first appear (by step, then place in the row; system metrics after the others).
    Rows come largest step first, so a key already seen at a larger step needs no more work."""
    latest: dict[str, tuple] = {}
    names: dict[str, str] = {}
    first: dict[str, tuple[bool, int, int]] = {}
    for system in (False, True):
        prefix = _SYSTEM_PREFIX if system else ""
        for step, timestamp, text in _db.trackio_rows(conn, run_id, system):
            try:
                data = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            step, ts = int(step), None
            for place, (trackio_key, raw) in enumerate(data.items()):
                if system and trackio_key == SYSTEM_STEP_KEY:
                    continue
                key = names.get(trackio_key)
                if key is None:
                    key = names[trackio_key] = prefix + mlflow_metric_key(trackio_key)
                first[key] = (system, step, place)
                current = latest.get(key)
                if current is not None and current[0][0] > step:
                    continue
                value = number_from_json(raw)
                if value is None:
                    continue
                if ts is None:
                    ts = ms_from_iso(timestamp)
                rank = (step, ts, clamped(value))
                if current is None or rank > current[0]:
                    latest[key] = (rank, value)
        names.clear()
    return [
        LatestMetric(key, None if value != value else value, ts, step, int(value != value))
        for key, ((step, ts, _), value) in sorted(latest.items(), key=lambda kv: first[kv[0]])
    ]
