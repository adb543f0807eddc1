"""``mytracker copy`` / ``mytracker import``: move MLflow history between tracking stores.

    mytracker copy SRC_URI DST_URI [--experiment NAME ...]
    mytracker import SRC_URI [--dir DIR] [--experiment NAME ...]

(the command line is ``mytracker.cli._copy``). Sources are any MLflow store (``sqlite:///``, ``file:`` / ``./mlruns``, ``http(s)://``,
``trackio://``); destinations are ``trackio://`` and ``sqlite:///``. Runs keep their ids, so a
second copy matches them and adds only what is new. Each run is written in one destination
transaction: an interrupted copy leaves every run either complete or absent, and the next copy
completes it.

>>> from mytracker._copy import copy_store
>>> summary = copy_store("sqlite:///mlflow.db", "trackio://")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlparse

from mlflow.entities import Experiment, LifecycleStage, Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mytracker._compat import sql_write_session
from mytracker.store._trackio import clamped

BATCH_SIZE = 1000  # metric points per write batch
_PAGE = 50_000  # runs per search page (MLflow's maximum)
_HISTORY_PAGE = 25_000  # metric points per get_metric_history page, as MlflowClient pages
_TERMINAL = {"FINISHED", "FAILED", "KILLED"}
_SOURCE_SCHEMES = ("sqlite", "file", "http", "https", "trackio")
_DESTINATION_SCHEMES = ("trackio", "sqlite")


class Point(NamedTuple):
    """One metric point, shaped like ``mlflow.entities.Metric`` (key, value, timestamp, step)."""

    key: str
    value: float
    timestamp: int
    step: int


@dataclass
class CopySummary:
    """What one copy did; ``str()`` is the end-of-copy report."""

    source: str
    destination: str
    experiments: int = 0
    experiments_created: int = 0
    runs_new: int = 0
    runs_updated: int = 0
    runs_unchanged: int = 0
    runs_skipped: int = 0
    metric_points: int = 0
    artifact_files: int = 0
    artifact_bytes: int = 0
    read_s: float = 0.0
    write_s: float = 0.0
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.runs_new + self.runs_updated + self.runs_unchanged

    def __str__(self) -> str:
        lines = [
            f"Copied {self.source} -> {self.destination}",
            f"  experiments:   {self.experiments} ({self.experiments_created} created)",
            f"  runs:          {self.runs} ({self.runs_new} new, {self.runs_updated} updated, "
            f"{self.runs_unchanged} unchanged"
            + (f", {self.runs_skipped} skipped" if self.runs_skipped else "")
            + ")",
            f"  metric points: {self.metric_points:,} written",
            f"  artifacts:     {self.artifact_files} files, {self.artifact_bytes:,} bytes",
            f"  elapsed:       {self.elapsed_s:.1f} s (reading {self.read_s:.1f} s, "
            f"writing {self.write_s:.1f} s)",
        ]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class Progress:
    """Progress reporting hooks; the default draws a tqdm bar on stderr when it is a terminal.

    Subclass it to observe a copy (tests raise ``KeyboardInterrupt`` from ``points``).
    """

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        self._points = 0

    def start(self, total_runs: int) -> None:
        if not self.enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # a plain line per run instead
            self._bar = None
            self._total = total_runs
            self._done = 0
            return
        self._bar = tqdm(total=total_runs, unit="run", file=sys.stderr, dynamic_ncols=True)

    def points(self, count: int) -> None:
        self._points += count
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._points:,} points", refresh=False)

    def run_done(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(1)
        else:
            self._done += 1
            print(f"\r{self._done}/{self._total} runs, {self._points:,} points", end="",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            print(file=sys.stderr)


# --- opening stores ---------------------------------------------------------------------------


def _fail(message: str) -> MlflowException:
    return MlflowException(message, INVALID_PARAMETER_VALUE)


def _sqlite_path(uri: str) -> str:
    return uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""


def _get_store(uri: str, artifact_uri: str | None = None):
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    return _tracking_store_registry.get_store(uri, artifact_uri)


def source_uri(uri: str) -> str:
    """A source as a store URI: a plain path to an SQLite file (MLflow 3's default store,
    ``mlflow.db``) stands for ``sqlite:///`` that file.

    >>> source_uri("/data/mlflow.db")  # doctest: +SKIP
    'sqlite:////data/mlflow.db'
    """
    if urlparse(uri).scheme == "" and os.path.isfile(uri):
        with open(uri, "rb") as handle:
            if handle.read(16) == b"SQLite format 3\x00":
                return f"sqlite:///{os.path.abspath(uri)}"
    return uri


def open_source(uri: str):
    """The MLflow store behind a source URI, after checking that the source exists (MLflow's
    own stores would silently create an empty one)."""
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        path = _sqlite_path(uri)
        if not path or path == ":memory:" or not os.path.isfile(path):
            raise _fail(f"Source {uri!r}: no SQLite database at {os.path.abspath(path)!r}.")
    elif scheme in ("file", ""):
        from mlflow.utils.file_utils import local_file_uri_to_path

        path = local_file_uri_to_path(uri)
        if not os.path.isdir(os.path.join(path, "0")) and not os.path.isfile(
            os.path.join(path, "0", "meta.yaml")
        ):
            if os.path.isfile(path):
                raise _fail(
                    f"Source {uri!r} is a file but no SQLite database; give an MLflow SQLite "
                    "file (e.g. mlflow.db or sqlite:///mlflow.db) or an ./mlruns directory."
                )
            if not os.path.isdir(path):
                raise _fail(
                    f"Source {uri!r}: no directory {path!r} (an MLflow SQLite file is "
                    "given as its path or as sqlite:///PATH)."
                )
            if not any(os.path.isfile(os.path.join(path, d, "meta.yaml")) for d in os.listdir(path)):
                raise _fail(f"Source {uri!r}: {path!r} is not an MLflow ./mlruns directory.")
        # Reading the file store is allowed; MLflow refuses it only to stop new writes.
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        uri = path if scheme == "" else uri
    elif scheme in ("http", "https"):
        _probe_server(uri)
    elif scheme == "trackio":
        from mytracker.store._uri import data_dir_from_uri

        if not data_dir_from_uri(uri).is_dir():
            raise _fail(f"Source {uri!r}: no Trackio data directory {data_dir_from_uri(uri)}.")
    else:
        raise _fail(
            f"Unknown source {uri!r}: use one of sqlite:///PATH, file:///PATH (an ./mlruns "
            "directory), http(s)://HOST:PORT (a running MLflow server) or trackio://[/DIR]."
        )
    return _get_store(uri)


def _probe_server(uri: str) -> None:
    import requests

    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    try:
        response = requests.post(url, json={"max_results": 1}, timeout=15)
    except requests.RequestException as e:
        raise _fail(f"Source {uri!r} is unreachable: {type(e).__name__}: {e}") from None
    if response.status_code != 200:
        raise _fail(
            f"Source {uri!r} did not answer as an MLflow tracking server "
            f"(HTTP {response.status_code} from {url})."
        )


def open_destination(uri: str, artifact_root: str | None = None):
    scheme = urlparse(uri).scheme
    if scheme not in _DESTINATION_SCHEMES:
        raise _fail(
            f"Unsupported destination {uri!r}: copy into trackio://[/DIR] or sqlite:///PATH."
        )
    if scheme == "sqlite":
        path = _sqlite_path(uri)
        if not path or path == ":memory:":
            raise _fail(f"Destination {uri!r}: give a database file, sqlite:///PATH.")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise _fail(f"Destination {uri!r}: directory {parent!r} does not exist.")
        return _SqlDestination(_get_store(uri, artifact_root))
    from mytracker.store._store import TrackioStore

    return _TrackioDestination(TrackioStore(uri, artifact_root))


# --- reading sources --------------------------------------------------------------------------


def _paged(call, **kwargs) -> Iterator:
    token = None
    while True:
        page = call(page_token=token, **kwargs)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _experiments(store) -> list[Experiment]:
    return list(_paged(store.search_experiments, view_type=ViewType.ALL, max_results=_PAGE))


def _runs(store, experiment_ids: list[str]) -> list[Run]:
    if not experiment_ids:
        return []
    return list(
        _paged(
            store.search_runs,
            experiment_ids=experiment_ids,
            filter_string="",
            run_view_type=ViewType.ALL,
            max_results=_PAGE,
        )
    )


def _metric_points(store, run: Run) -> Iterator[list[Point]]:
    """A run's full metric history in batches, sorted by (timestamp, step, key) so that the
    points Trackio groups into one row (same step and time) arrive together."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    run_id = run.info.run_id
    if isinstance(store, SqlAlchemyStore):
        # One query for the run's whole history instead of one get_metric_history per key.
        connection = store.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? "
                "ORDER BY timestamp, step, key",
                (run_id,),
            )
            while rows := cursor.fetchmany(BATCH_SIZE):
                yield [
                    Point(key, math.nan if is_nan else value, timestamp, step)
                    for key, value, timestamp, step, is_nan in rows
                ]
        finally:
            connection.close()
        return
    from mlflow.store.tracking.rest_store import RestStore

    # A server answers in pages; local stores read a whole history in one call (paging a
    # local store re-reads the history once per page).
    page = _HISTORY_PAGE if isinstance(store, RestStore) else None
    points = []
    for key in sorted({m.key for m in _latest(run)}):
        history = _paged(store.get_metric_history, run_id=run_id, metric_key=key, max_results=page)
        points.extend(Point(m.key, m.value, m.timestamp, m.step) for m in history)
    points.sort(key=lambda p: (p.timestamp, p.step, p.key))
    for i in range(0, len(points), BATCH_SIZE):
        yield points[i : i + BATCH_SIZE]


def _latest(run: Run) -> list:
    """The run's latest metrics as Metric entities (``RunData.metrics`` keeps only values)."""
    return run.data._metric_objs


def _parents_first(runs: list[Run]) -> list[Run]:
    """Runs ordered so that a parent run is written before its children (Trackio groups a
    child under its parent's name)."""
    by_id = {r.info.run_id: r for r in runs}

    def depth(run: Run) -> int:
        seen, d = set(), 0
        while (parent := run.data.tags.get(MLFLOW_PARENT_RUN_ID)) in by_id and parent not in seen:
            seen.add(parent)
            run, d = by_id[parent], d + 1
        return d

    return sorted(runs, key=lambda r: (depth(r), r.info.start_time or 0, r.info.run_id))


# --- comparing runs ---------------------------------------------------------------------------


def _stored_value(value: float) -> float | str:
    """A metric value as both kinds of store can hold it: NaN as a marker, infinities as the
    largest finite doubles (MLflow's SQL store cannot store infinities)."""
    return "nan" if value != value else clamped(value)


def _inputs_key(run: Run) -> set:
    return {
        (d.dataset.name, d.dataset.digest, tuple(sorted((t.key, t.value) for t in d.tags)))
        for d in (run.inputs.dataset_inputs if run.inputs else [])
    }


def _up_to_date(source: Run, destination: Run, finished_only: bool = True) -> bool:
    """True when a destination run already shows everything the source run shows. Latest
    metrics stand in for the histories, so a run still in progress is always re-checked."""
    s, d = source.info, destination.info
    if (s.run_name, s.status, s.start_time, s.end_time, s.lifecycle_stage, s.user_id) != (
        d.run_name, d.status, d.start_time, d.end_time, d.lifecycle_stage, d.user_id
    ) or (finished_only and s.status not in _TERMINAL):
        return False
    if source.data.params != destination.data.params:
        return False
    if any(destination.data.tags.get(k) != v for k, v in source.data.tags.items()):
        return False

    def latest(run: Run) -> dict:
        return {
            m.key: (_stored_value(m.value), m.timestamp, m.step) for m in _latest(run)
        }

    return latest(source) == latest(destination) and _inputs_key(source) <= _inputs_key(destination)


# --- destinations -----------------------------------------------------------------------------


class _Destination:
    store: Any

    def experiment_for(self, source: Experiment, summary: CopySummary) -> str:
        """The destination experiment of the same name, created (with its tags) if missing."""
        found = self.store.get_experiment_by_name(source.name)
        if found is None:
            experiment_id = self.store.create_experiment(source.name, tags=_tags_of(source))
            summary.experiments_created += 1
            return experiment_id
        missing = [t for t in _tags_of(source) if found.tags.get(t.key) != t.value]
        if missing:
            if found.lifecycle_stage == LifecycleStage.ACTIVE:
                for tag in missing:
                    self.store.set_experiment_tag(found.experiment_id, tag)
            else:
                summary.warnings.append(
                    f"experiment {source.name!r} is deleted in the destination; its tags were "
                    "not updated"
                )
        return found.experiment_id

    def finish_experiment(self, source: Experiment, experiment_id: str) -> None:
        current = self.store.get_experiment(experiment_id).lifecycle_stage
        if current != source.lifecycle_stage:
            if source.lifecycle_stage == LifecycleStage.DELETED:
                self.store.delete_experiment(experiment_id)
            else:
                self.store.restore_experiment(experiment_id)

    def artifact_uri(self, experiment_id: str, run_id: str, run_name: str | None = None) -> str:
        """Where a copied run's artifacts go: as for a run logged there (MLflow's
        ``<location>/<run id>/artifacts``, or ``mlflow/<run name>/`` in Trackio's Files view)."""
        from mytracker.store._dashboard import run_artifact_uri

        location = self.store.get_experiment(experiment_id).artifact_location
        return run_artifact_uri(location, run_id, run_name or run_id)


def _tags_of(experiment: Experiment) -> list:
    from mlflow.entities import ExperimentTag

    return [ExperimentTag(k, v) for k, v in experiment.tags.items()]


class _TrackioDestination(_Destination):
    """Writes a run through the store's own ``ProjectDB`` pieces, in one transaction."""

    def __init__(self, store):
        self.store = store

    def write_run(self, experiment_id: str, run: Run, batches: Iterable[list[Point]],
                  artifact_uri: str, exists: bool, on_batch) -> int:
        return self.store.import_run(experiment_id, run, batches, artifact_uri, on_batch)


class _SqlDestination(_Destination):
    """Writes a run into MLflow's own SQL schema through its SQLAlchemy models, in one session."""

    def __init__(self, store):
        self.store = store

    def write_run(self, experiment_id: str, run: Run, batches: Iterable[list[Point]],
                  artifact_uri: str, exists: bool, on_batch) -> int:
        return import_run_sql(
            self.store, experiment_id, run, batches, artifact_uri, on_batch, exists
        )


def import_run_sql(store, experiment_id: str, run: Run, batches: Iterable[list[Point]],
                   artifact_uri: str, on_batch=None, exists: bool = True) -> int:
    """Insert or complete ``run`` (keeping its id) in an MLflow ``SqlAlchemyStore``, in one
    session; return the number of metric points written. ``exists=False`` promises the run is
    new (skips looking up what it already holds)."""

    from mlflow.store.tracking.dbmodels.models import (
        SqlDataset, SqlInput, SqlInputTag, SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag,
    )
    from sqlalchemy import delete, insert, select, update

    info, run_id = run.info, run.info.run_id
    written = 0
    with sql_write_session(store) as session:
        existed = None
        if exists:
            existed = session.execute(
                select(SqlRun.lifecycle_stage).where(SqlRun.run_uuid == run_id)
            ).first()
        fields = {
            "name": info.run_name, "user_id": info.user_id, "status": info.status,
            "start_time": info.start_time, "end_time": info.end_time,
            "lifecycle_stage": info.lifecycle_stage,
        }
        if info.lifecycle_stage == LifecycleStage.DELETED and (
            existed is None or existed[0] != info.lifecycle_stage
        ):
            fields["deleted_time"] = info.end_time or info.start_time
        if existed is None:
            session.execute(insert(SqlRun), [{
                **fields, "run_uuid": run_id, "experiment_id": int(experiment_id),
                "source_type": "UNKNOWN", "source_name": "", "entry_point_name": "",
                "source_version": "", "artifact_uri": artifact_uri,
            }])
        else:
            session.execute(update(SqlRun).where(SqlRun.run_uuid == run_id).values(**fields))

        def held(model, *columns) -> dict:
            if existed is None:
                return {}
            return dict(session.execute(select(*columns).where(model.run_uuid == run_id)).all())

        tags = held(SqlTag, SqlTag.key, SqlTag.value)
        changed = {k: v for k, v in run.data.tags.items() if tags.get(k, object()) != v}
        if changed:
            if tags:
                session.execute(
                    delete(SqlTag).where(SqlTag.run_uuid == run_id, SqlTag.key.in_(list(changed)))
                )
            session.execute(
                insert(SqlTag), [{"run_uuid": run_id, "key": k, "value": v} for k, v in changed.items()]
            )
        params = held(SqlParam, SqlParam.key, SqlParam.value)
        new_params = [
            {"run_uuid": run_id, "key": k, "value": v}
            for k, v in run.data.params.items() if k not in params
        ]
        if new_params:
            session.execute(insert(SqlParam), new_params)

        _sql_inputs(session, int(experiment_id), run_id, run, SqlDataset, SqlInput, SqlInputTag)

        present = set()
        if existed is not None:
            present = {
                (key, step, ts, "nan" if is_nan else value)
                for key, value, ts, step, is_nan in session.execute(
                    select(SqlMetric.key, SqlMetric.value, SqlMetric.timestamp, SqlMetric.step,
                           SqlMetric.is_nan).where(SqlMetric.run_uuid == run_id)
                )
            }
        latest: dict[str, tuple] = {}
        if existed is not None:
            latest = {
                key: ((step, ts, 0.0 if is_nan else value), value, bool(is_nan))
                for key, value, ts, step, is_nan in session.execute(
                    select(SqlLatestMetric.key, SqlLatestMetric.value, SqlLatestMetric.timestamp,
                           SqlLatestMetric.step, SqlLatestMetric.is_nan)
                    .where(SqlLatestMetric.run_uuid == run_id)
                )
            }
        latest_before = dict(latest)
        for batch in batches:
            rows = []
            for p in batch:
                is_nan = p.value != p.value
                value = 0.0 if is_nan else _stored_value(p.value)
                identity = (p.key, p.step, p.timestamp, "nan" if is_nan else value)
                if identity in present:
                    continue
                present.add(identity)
                rows.append({"run_uuid": run_id, "key": p.key, "value": value,
                             "timestamp": p.timestamp, "step": p.step, "is_nan": is_nan})
                rank = (p.step, p.timestamp, value)
                if p.key not in latest or rank > latest[p.key][0]:
                    latest[p.key] = (rank, value, is_nan)
            if rows:
                session.execute(insert(SqlMetric), rows)
                written += len(rows)
            if on_batch:
                on_batch(len(batch))
        updated = {k: v for k, v in latest.items() if latest_before.get(k) != v}
        if updated:
            session.execute(delete(SqlLatestMetric).where(  # no-op for a new run
                SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key.in_(list(updated))))
            session.execute(insert(SqlLatestMetric), [
                {"run_uuid": run_id, "key": k, "value": value, "timestamp": rank[1],
                 "step": rank[0], "is_nan": is_nan}
                for k, (rank, value, is_nan) in updated.items()
            ])
    return written


def _sql_inputs(session, experiment_id: int, run_id: str, run: Run,
                SqlDataset, SqlInput, SqlInputTag) -> None:
    """Dataset inputs as ``SqlAlchemyStore._log_inputs_impl`` writes them, in our session."""
    import uuid

    from sqlalchemy import select

    inputs = {}
    for d in run.inputs.dataset_inputs if run.inputs else []:
        inputs.setdefault((d.dataset.name, d.dataset.digest), d)
    for (name, digest), dataset_input in inputs.items():
        dataset_uuid = session.execute(
            select(SqlDataset.dataset_uuid).where(
                SqlDataset.experiment_id == experiment_id, SqlDataset.name == name,
                SqlDataset.digest == digest,
            )
        ).scalar()
        if dataset_uuid is None:
            dataset_uuid = uuid.uuid4().hex
            d = dataset_input.dataset
            session.add(SqlDataset(
                dataset_uuid=dataset_uuid, experiment_id=experiment_id, name=name, digest=digest,
                dataset_source_type=d.source_type, dataset_source=d.source,
                dataset_schema=d.schema, dataset_profile=d.profile,
            ))
        elif session.execute(
            select(SqlInput.input_uuid).where(
                SqlInput.source_type == "DATASET", SqlInput.source_id == dataset_uuid,
                SqlInput.destination_type == "RUN", SqlInput.destination_id == run_id,
            )
        ).first():
            continue
        input_uuid = uuid.uuid4().hex
        session.add(SqlInput(
            input_uuid=input_uuid, source_type="DATASET", source_id=dataset_uuid,
            destination_type="RUN", destination_id=run_id,
        ))
        for tag in dataset_input.tags:
            session.add(SqlInputTag(input_uuid=input_uuid, name=tag.key, value=tag.value))
    session.flush()


# --- artifacts --------------------------------------------------------------------------------


def _artifact_files(repo, path: str | None = None) -> dict[str, int | None]:
    files: dict[str, int | None] = {}
    try:
        listing = repo.list_artifacts(path)
    except (OSError, MlflowException):
        return files
    for info in listing:
        if info.is_dir:
            files.update(_artifact_files(repo, info.path))
        else:
            files[info.path] = info.file_size
    return files


def _copy_artifacts(src_uri: str, run: Run, dst_artifact_uri: str, summary: CopySummary) -> None:
    """Copy the files the destination lacks (or holds at another size, e.g. cut short)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    if not run.info.artifact_uri:
        return
    source = get_artifact_repository(run.info.artifact_uri, tracking_uri=src_uri)
    wanted = _artifact_files(source)
    if not wanted:
        return
    destination = get_artifact_repository(dst_artifact_uri)
    have = _artifact_files(destination)
    with tempfile.TemporaryDirectory(prefix="mytracker-copy-") as tmp, _quiet_downloads():
        for path, size in sorted(wanted.items()):
            if path in have and (size is None or have[path] == size):
                continue
            local = source.download_artifacts(path, dst_path=tmp)
            directory = os.path.dirname(path)
            destination.log_artifact(local, directory or None)
            summary.artifact_files += 1
            summary.artifact_bytes += os.path.getsize(local)
            os.remove(local)


@contextmanager
def _quiet_downloads():
    """MLflow draws its own bar per download; the copy has one bar for everything."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


# --- the copy ---------------------------------------------------------------------------------


def copy_store(
    src_uri: str,
    dst_uri: str,
    experiments: list[str] | None = None,
    *,
    artifact_root: str | None = None,
    progress: Progress | None = None,
    verify: bool = False,
) -> CopySummary:
    """Copy experiments, runs, metric histories, datasets and artifacts from ``src_uri`` into
    ``dst_uri``; re-running copies only what is new.

    >>> print(copy_store("sqlite:///mlflow.db", "trackio:///data/trackio"))  # doctest: +SKIP
    """
    started = time.perf_counter()
    src_uri = source_uri(src_uri)
    summary = CopySummary(src_uri, dst_uri)
    if _same_place(src_uri, dst_uri):
        raise _fail("Source and destination are the same store.")
    source = open_source(src_uri)
    destination = open_destination(dst_uri, artifact_root)
    progress = progress or Progress(enabled=False)

    found = [e for e in _experiments(source)]
    if experiments:
        names = {e.name for e in found}
        unknown = [n for n in experiments if n not in names]
        if unknown:
            raise MlflowException(
                f"No experiment named {', '.join(map(repr, unknown))} in {src_uri}. "
                f"It has: {', '.join(sorted(names))}.",
                RESOURCE_DOES_NOT_EXIST,
            )
        found = [e for e in found if e.name in set(experiments)]
    found.sort(key=lambda e: int(e.experiment_id) if e.experiment_id.isdigit() else 0)

    t = time.perf_counter()
    plan = [(e, _parents_first(_runs(source, [e.experiment_id]))) for e in found]
    summary.read_s += time.perf_counter() - t
    t = time.perf_counter()
    held: dict[str, tuple[str, Run]] = {}
    for experiment in _experiments(destination.store):
        for run in _runs(destination.store, [experiment.experiment_id]):
            held[run.info.run_id] = (experiment.experiment_id, run)
    summary.write_s += time.perf_counter() - t

    progress.start(sum(len(runs) for _, runs in plan))
    try:
        for experiment, runs in plan:
            summary.experiments += 1
            experiment_id = destination.experiment_for(experiment, summary)
            for run in runs:
                _copy_run(src_uri, source, destination, experiment_id, run, held, summary,
                          progress, verify)
                progress.run_done()
            destination.finish_experiment(experiment, experiment_id)
    finally:
        progress.close()
        summary.elapsed_s = time.perf_counter() - started
    return summary


def _copy_run(src_uri, source, destination, experiment_id, run, held, summary, progress,
              verify) -> None:
    run_id = run.info.run_id
    existing = held.get(run_id)
    if existing is not None and existing[0] != experiment_id:
        summary.runs_skipped += 1
        summary.warnings.append(
            f"run {run_id} already exists in destination experiment {existing[0]}; skipped"
        )
        return
    dst_run = existing[1] if existing else None
    artifact_uri = (
        dst_run.info.artifact_uri if dst_run
        else destination.artifact_uri(experiment_id, run_id, run.info.run_name)
    )
    t = time.perf_counter()
    _copy_artifacts(src_uri, run, artifact_uri, summary)
    summary.write_s += time.perf_counter() - t  # transfer time: reading and writing files
    if dst_run is not None and not verify and _up_to_date(run, dst_run):
        summary.runs_unchanged += 1
        return

    def timed_batches() -> Iterator[list[Point]]:
        batches = _metric_points(source, run)
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            summary.read_s += time.perf_counter() - t0
            if batch is None:
                return
            yield batch

    t = time.perf_counter()
    read_before = summary.read_s
    written = destination.write_run(
        experiment_id, run, timed_batches(), artifact_uri, dst_run is not None, progress.points
    )
    summary.write_s += time.perf_counter() - t - (summary.read_s - read_before)
    summary.metric_points += written
    if dst_run is None:
        summary.runs_new += 1
    elif written or not _up_to_date(run, dst_run, finished_only=False):
        summary.runs_updated += 1
    else:
        summary.runs_unchanged += 1


def _same_place(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")
