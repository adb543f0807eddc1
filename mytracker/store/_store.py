"""``TrackioStore``: MLflow's tracking-store contract over Trackio project databases.

This is the one place where MLflow concepts are translated: an experiment is a Trackio project
file, a run is a Trackio run with the same id, params and tags become the run's Trackio config,
and every metric point becomes Trackio metric data. MLflow's own SQLite store is the reference
for every answer and every error; SQL lives in ``_db.py``.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import functools
import inspect
import json
import logging
import math
import operator
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from itertools import islice
from pathlib import Path

import orjson  # a dependency of Trackio's
from mlflow.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    ExperimentTag,
    InputTag,
    LifecycleStage,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.entities.logged_model_output import LoggedModelOutput
from mlflow.entities.run_outputs import RunOutputs
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    NOT_IMPLEMENTED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local
from mlflow.utils.validation import (
    _validate_batch_log_limits,
    _validate_dataset_inputs,
    _validate_experiment_artifact_location_length,
    _validate_experiment_name,
    _validate_experiment_tag,
    _validate_metric,
    _validate_param,
    _validate_param_keys_unique,
    _validate_run_id,
    _validate_tag,
)

from mytracker.store import _db, _media
from mytracker.store._db import DatabaseError, ProjectDB
from mytracker.store._uri import data_dir_from_uri

_logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT_ID = "0"
SYSTEM_PREFIX = "system/"
_MAX_OPEN_FILES = 64
_ARTIFACTS_FOLDER = "artifacts"
# Trackio's reserved on-disk names (see `trackio.sqlite_storage.validate_project_name`).
_RESERVED_SUFFIXES = (
    "_system", "_configs", "_traces", "_artifacts", "_artifact_versions", "_artifact_aliases",
    "_run_artifact_links", "_external_run_artifact_links",
)
_RESERVED_PREFIX = "registry-"
_MAX_STEM = 120
_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")
_STRING_ATTRIBUTES = {"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}


def _wrap_db_errors(error: DatabaseError) -> MlflowException:
    return MlflowException(str(error), INVALID_STATE)


_LIVE_STORES: "weakref.WeakSet[TrackioStore]" = weakref.WeakSet()
_drain_registered = False


def _drain_at_exit(store: "TrackioStore") -> None:
    """Write what asynchronous logging still holds when the interpreter exits.

    MLflow drains its queue in an atexit hook, which runs after concurrent.futures has stopped
    accepting work, and so loses the last batches. Threading's exit hooks run earlier (the last
    registered first), so the drain is registered there, once for all stores.
    """
    global _drain_registered
    if not _drain_registered:
        _drain_registered = True

        def drain() -> None:
            for live in list(_LIVE_STORES):
                live.shut_down_async_logging()

        try:
            threading._register_atexit(drain)
        except (AttributeError, RuntimeError):  # another Python, or already shutting down
            atexit.register(drain)
    _LIVE_STORES.add(store)


def _configure_registry_mappers() -> None:
    """Inside `mlflow server`: set up MLflow's registry ORM now, as MLflow's own SQL tracking
    store does on its first request. Left to the first registry request, it can race with the
    GraphQL handler's import of MLflow's auth models and break that worker's registry calls."""
    import sqlalchemy.orm

    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401

    sqlalchemy.orm.configure_mappers()


def _run_owner() -> tuple | None:
    """(host, pid, process start time) of this process, or None inside MLflow's tracking server
    (there the creating process is a server worker, not the training job)."""
    import socket

    if os.environ.get("_MLFLOW_SERVER_FILE_STORE"):
        return None
    return socket.gethostname(), os.getpid(), _process_start(os.getpid())


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


def _process_alive(pid: int | None, started: float | None) -> bool:
    if pid is None:
        return True  # no owner recorded: cannot tell, so leave the run alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    current = _process_start(pid)
    # A reused pid belongs to a process started later than the one that made the run.
    return started is None or current is None or abs(current - started) < 1.0


def project_stem(name: str) -> str:
    """Trackio's on-disk identity for a project name: only ``[A-Za-z0-9_-]`` and unicode letters
    and digits survive (so ``../x`` is ``x``), as in ``trackio.utils.canonical_project_name``."""
    stem = "".join(c for c in name if c.isalnum() or c in "-_")[:_MAX_STEM] or "default"
    if stem.startswith(_RESERVED_PREFIX):
        stem = "mlflow-" + stem
    if stem.endswith(_RESERVED_SUFFIXES):
        stem += "-mlflow"
    return stem


_VALID_KEYS: set[str] = set()  # metric names that passed MLflow's validation
_NAN = "nan"  # NaN's identity when deduplicating points (NaN != NaN)


@lru_cache(maxsize=65536)
def _key_encoding(key: str) -> tuple[bool, str]:
    """(is a system metric, the key as quoted JSON in Trackio's row) for an MLflow metric key."""
    system = key.startswith(SYSTEM_PREFIX)
    trackio_key = _db.trackio_metric_key(key[len(SYSTEM_PREFIX):] if system else key)
    return system, json.dumps(trackio_key, ensure_ascii=False)


def _sanitized(value: float) -> float:
    """The value MLflow's SQL store orders by: NaN as 0, infinities clamped to finite."""
    if value != value:
        return 0.0
    return max(min(value, 1.7976931348623157e308), -1.7976931348623157e308)


def _latest_points(points: list) -> dict[str, tuple]:
    """((step, timestamp), value) per key of the point MLflow calls latest: the largest (step,
    timestamp, value), comparing values as MLflow's SQL store does."""
    latest: dict[str, tuple] = {}
    for key, value, ts, step in points:
        rank = (step, ts)
        current = latest.get(key)
        if current is None or rank > current[0] or (
            rank == current[0] and _sanitized(value) > _sanitized(current[1])
        ):
            latest[key] = (rank, value)
    return latest


def _group_rows(points: list, quoted: dict, system_keys: set, open_rows: dict) -> tuple:
    """Trackio rows for points: those of one (step, timestamp) share a row, one value per key
    (a second value for a key starts another row; the same value again is the same point).
    `open_rows` holds stored rows, (row id, values) by (system, step, timestamp), that may take
    more keys. Returns (points written, new metric rows, new system rows, updated rows by
    system), new rows as one flat list (timestamp_ms, step, JSON, ...) and updates as (row id,
    JSON)."""
    groups: dict[tuple, list[dict]] = {}
    stored_rows: dict[int, tuple[int, int]] = {}  # id(row) -> (row id, size when read)
    written = 0
    for key, value, ts, step in points:
        group_key = (key in system_keys, step, ts)
        quoted_key = quoted[key]
        rows = groups.get(group_key)
        if rows is None:
            rows = groups[group_key] = []
            for row_id, values in open_rows.get(group_key, ()) if open_rows else ():
                row = dict(values)
                stored_rows[id(row)] = (row_id, len(row))
                rows.append(row)
            if not rows:
                rows.append({quoted_key: value})
                written += 1
                continue
        # Rows holding the key come first; a row without it takes the point.
        for row in rows:
            if quoted_key not in row:
                row[quoted_key] = value
                break
            old = row[quoted_key]
            if old == value or (old != old and value != value):
                written -= 1  # the same point twice in one batch
                break
        else:
            rows.append({quoted_key: value})
        written += 1

    pending = []  # (system, step, ts, values, stored row id or None): the rows to write
    for (system, step, ts), group in groups.items():
        for row in group:
            stored = stored_rows.get(id(row))
            if stored is None or len(row) != stored[1]:  # a stored row that took nothing stays
                pending.append((system, step, ts, row, None if stored is None else stored[0]))
    # All values formatted at once; a system row's stored "step" is written from `step`.
    texts = iter(_db.json_numbers([v for *_, row, _ in pending for v in row.values()]))
    metric_rows, system_rows, updates = [], [], {False: [], True: []}
    for system, step, ts, row, row_id in pending:
        fields = [
            k + ":" + text
            for k, text in zip(row, islice(texts, len(row)))
            if not system or k != '"step"'
        ]
        if system:
            fields.append(f'"step":{step}')
        text = "{" + ",".join(fields) + "}"
        if row_id is not None:
            updates[system].append((row_id, text))
        else:
            (system_rows if system else metric_rows).extend((ts, step, text))
    return written, metric_rows, system_rows, updates


class TrackioStore(AbstractStore):
    """MLflow tracking store that keeps every experiment in a Trackio project database.

    >>> import mlflow
    >>> mlflow.set_tracking_uri("trackio:///tmp/trackio-data")  # doctest: +SKIP
    """

    def __init__(self, store_uri: str, artifact_uri: str | None = None):
        super().__init__()
        self.store_uri = store_uri
        self.data_dir = data_dir_from_uri(store_uri)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MlflowException(
                f"Cannot create the Trackio data directory {self.data_dir}: {e}", INVALID_STATE
            ) from e
        # Set inside `mlflow server` (`mlflow-artifacts:/`); otherwise artifacts go where
        # Trackio's dashboard lists them (see `_media`).
        self.artifact_uri = artifact_uri
        self._lock = threading.RLock()
        self._dbs: OrderedDict[Path, ProjectDB] = OrderedDict()
        self._pid = os.getpid()
        self._run_paths: dict[str, Path] = {}
        self._experiment_paths: dict[str, Path] = {}
        self._broken_warned: set[Path] = set()
        if os.environ.get("_MLFLOW_SERVER_FILE_STORE"):
            _configure_registry_mappers()
        _drain_at_exit(self)
        if self._find_experiment(DEFAULT_EXPERIMENT_ID) is None:
            with self._directory_lock():
                if self._find_experiment(DEFAULT_EXPERIMENT_ID) is None:
                    self._create_experiment_file(
                        DEFAULT_EXPERIMENT_ID, Experiment.DEFAULT_EXPERIMENT_NAME, None, []
                    )

    # --- files ---------------------------------------------------------------------------------

    def _db(self, path: Path, create: bool = False) -> ProjectDB:
        with self._lock:
            if os.getpid() != self._pid:  # a forked worker must not share its parent's handles
                self._dbs.clear()
                self._pid = os.getpid()
            db = self._dbs.get(path)
            if db is None:
                db = ProjectDB(path, create=create)
                self._dbs[path] = db
                while len(self._dbs) > _MAX_OPEN_FILES:
                    # Not closed here: a thread may still hold it; it closes when released.
                    self._dbs.popitem(last=False)
            self._dbs.move_to_end(path)
            return db

    def _project_dbs(self) -> Iterator[ProjectDB]:
        """Every readable project database in the data directory, in name order."""
        for path in sorted(self.data_dir.glob("*.db")):
            try:
                yield self._db(path)
            except (DatabaseError, FileNotFoundError) as e:
                self._warn_skipping(path, e)

    def _warn_skipping(self, path: Path, error: Exception) -> None:
        if path not in self._broken_warned:
            self._broken_warned.add(path)
            _logger.warning("Skipping %s: %s", path, error)

    def _experiments(self) -> list[tuple[ProjectDB, dict]]:
        found = []
        for db in self._project_dbs():
            try:
                experiment = db.experiment()
            except DatabaseError as e:  # damaged: the other experiments still list
                self._warn_skipping(db.path, e)
                continue
            if experiment is not None:
                self._experiment_paths[experiment["experiment_id"]] = db.path
                found.append((db, experiment))
        return found

    def _find_experiment(self, experiment_id: str) -> tuple[ProjectDB, dict] | None:
        path = self._experiment_paths.get(experiment_id)
        if path is not None and path.exists():
            db = self._db(path)
            experiment = db.experiment()
            if experiment is not None and experiment["experiment_id"] == experiment_id:
                return db, experiment
        for db, experiment in self._experiments():
            if experiment["experiment_id"] == experiment_id:
                return db, experiment
        return None

    def _experiment(self, experiment_id, stages=None) -> tuple[ProjectDB, dict]:
        experiment_id = str(experiment_id) if experiment_id is not None else DEFAULT_EXPERIMENT_ID
        found = self._find_experiment(experiment_id)
        if found is None or (stages and found[1]["lifecycle_stage"] not in stages):
            raise MlflowException(
                f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST
            )
        return found

    @contextmanager
    def _directory_lock(self) -> Iterator[None]:
        """Serialises experiment creation across processes."""
        with open(self.data_dir / ".mytracker.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _new_project_path(self, name: str) -> Path:
        """A file for a new experiment: the Trackio project of the same name when that is free
        (or an existing plain Trackio project whose name is exactly this), else a numbered one, so
        names that Trackio would reduce alike never share a file."""
        stem = project_stem(name)
        candidates = [stem] + [f"{stem}-{n}" for n in range(2, 10_000)]
        for candidate in candidates:
            path = self.data_dir / f"{candidate}.db"
            if not path.exists():
                return path
            if candidate == name:
                try:
                    if self._db(path).experiment() is None:
                        return path  # adopt the Trackio project of that very name
                except DatabaseError:
                    pass
        raise MlflowException(f"No free project file for experiment {name!r}", INVALID_STATE)

    def _create_experiment_file(self, experiment_id, name, artifact_location, tags) -> None:
        path = self._new_project_path(name)
        location = artifact_location or (
            append_to_uri_path(self.artifact_uri, experiment_id)
            if self.artifact_uri
            else _media.default_artifact_location(path)
        )
        fields = (experiment_id, name, location, get_current_time_millis(), {t.key: t.value for t in tags})
        try:
            if path.exists():  # a plain Trackio project of this very name: adopt it in place
                self._db(path).create_experiment(*fields)
            else:
                # Made whole under a name no reader lists, then renamed into place, so another
                # process never opens a half-made project.
                draft = path.with_name(f".{path.name}.{os.getpid()}.draft")
                try:
                    draft_db = ProjectDB(draft, create=True)
                    try:
                        draft_db.create_experiment(*fields)
                    finally:
                        draft_db.close()
                    os.replace(draft, path)
                except BaseException:  # e.g. a full disk: leave nothing behind
                    for leftover in (draft, Path(f"{draft}-wal"), Path(f"{draft}-shm")):
                        leftover.unlink(missing_ok=True)
                    raise
        except DatabaseError as e:
            raise _wrap_db_errors(e) from e
        except OSError as e:
            raise MlflowException(f"Cannot write {path}: {e}", INVALID_STATE) from e
        self._experiment_paths[experiment_id] = path

    # --- experiments ---------------------------------------------------------------------------

    @staticmethod
    def _to_experiment(experiment: dict) -> Experiment:
        return Experiment(
            experiment_id=experiment["experiment_id"],
            name=experiment["name"],
            artifact_location=experiment["artifact_location"],
            lifecycle_stage=experiment["lifecycle_stage"],
            tags=[ExperimentTag(k, v) for k, v in experiment["tags"].items()],
            creation_time=experiment["creation_time"],
            last_update_time=experiment["last_update_time"],
        )

    def create_experiment(self, name, artifact_location=None, tags=None):
        _validate_experiment_name(name)
        if artifact_location:
            artifact_location = resolve_uri_if_local(artifact_location)
            _validate_experiment_artifact_location_length(artifact_location)
        for tag in tags or []:
            _validate_experiment_tag(tag.key, tag.value)
        with self._directory_lock():
            experiments = self._experiments()
            if self.get_experiment_by_name(name) is not None:
                raise MlflowException(
                    f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS
                )
            experiment_id = str(1 + max((int(e["experiment_id"]) for _, e in experiments), default=0))
            self._create_experiment_file(experiment_id, name, artifact_location, tags or [])
        return experiment_id

    def get_experiment(self, experiment_id):
        return self._to_experiment(self._experiment(_parse_experiment_id(experiment_id))[1])

    def get_experiment_by_name(self, experiment_name):
        # The file named after the experiment is the likely home; a rename can move the name.
        path = self.data_dir / f"{project_stem(experiment_name)}.db"
        if path.exists():
            try:
                experiment = self._db(path).experiment()
            except DatabaseError as e:
                raise _wrap_db_errors(e) from e
            if experiment is not None and experiment["name"] == experiment_name:
                return self._to_experiment(experiment)
        for _, experiment in self._experiments():
            if experiment["name"] == experiment_name:
                return self._to_experiment(experiment)
        return None

    def search_experiments(
        self,
        view_type=ViewType.ACTIVE_ONLY,
        max_results=SEARCH_MAX_RESULTS_DEFAULT,
        filter_string=None,
        order_by=None,
        page_token=None,
    ):
        _validate_max_results(max_results)
        stages = set(LifecycleStage.view_type_to_stages(view_type))
        experiments = [
            self._to_experiment(e) for _, e in self._experiments() if e["lifecycle_stage"] in stages
        ]
        experiments = SearchExperimentsUtils.filter(experiments, filter_string)
        # MLflow's SQL store sorts experiment ids as integers, by default newest first.
        order_by = list(order_by or ["creation_time DESC", "experiment_id ASC"])
        by_number = sorted(experiments, key=lambda e: int(e.experiment_id))
        keyed = [_NumericIdExperiment(e) for e in by_number]
        ordered = [k.experiment for k in SearchExperimentsUtils.sort(keyed, order_by)]
        page, token = SearchUtils.paginate(ordered, page_token, max_results)
        return PagedList(page, token)

    def _active_experiment(self, experiment_id) -> tuple[ProjectDB, dict]:
        db, experiment = self._experiment(_parse_experiment_id(experiment_id))
        if experiment["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The experiment {experiment_id} must be in the 'active' state. "
                f"Current state is {experiment['lifecycle_stage']}.",
                INVALID_PARAMETER_VALUE,
            )
        return db, experiment

    def filter_active_experiment_ids(self, experiment_ids):
        active = []
        for experiment_id in experiment_ids:
            found = self._find_experiment(str(experiment_id))
            if found and found[1]["lifecycle_stage"] == LifecycleStage.ACTIVE:
                active.append(experiment_id)
        return active

    def delete_experiment(self, experiment_id):
        self._set_experiment_lifecycle(experiment_id, LifecycleStage.ACTIVE, LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id):
        self._set_experiment_lifecycle(experiment_id, LifecycleStage.DELETED, LifecycleStage.ACTIVE)

    def _set_experiment_lifecycle(self, experiment_id, current: str, new: str) -> None:
        db, _ = self._experiment(_parse_experiment_id(experiment_id), [current])
        now = get_current_time_millis()
        with db.write() as conn:
            db.update_experiment(conn, lifecycle_stage=new, last_update_time=now)
            deleted = new == LifecycleStage.DELETED
            db.set_runs_lifecycle(conn, new, now if deleted else None)

    def rename_experiment(self, experiment_id, new_name):
        _validate_experiment_name(new_name)
        with self._directory_lock():
            db, experiment = self._experiment(_parse_experiment_id(experiment_id))
            if experiment["lifecycle_stage"] != LifecycleStage.ACTIVE:
                raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
            if new_name != experiment["name"] and self.get_experiment_by_name(new_name):
                raise MlflowException(
                    f"Experiment(name={new_name}) already exists.", RESOURCE_ALREADY_EXISTS
                )
            with db.write() as conn:
                db.update_experiment(conn, name=new_name, last_update_time=get_current_time_millis())

    def set_experiment_tag(self, experiment_id, tag):
        _validate_experiment_tag(tag.key, tag.value)
        db, _ = self._active_experiment(experiment_id)
        with db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO mlflow_experiment_tags VALUES (?, ?)", (tag.key, tag.value)
            )

    def delete_experiment_tag(self, experiment_id, key):
        db, _ = self._active_experiment(experiment_id)
        with db.write() as conn:
            if conn.execute("DELETE FROM mlflow_experiment_tags WHERE key = ?", (key,)).rowcount == 0:
                raise MlflowException(
                    f"No tag with name: {key} in experiment with id {experiment_id}",
                    RESOURCE_DOES_NOT_EXIST,
                )

    # --- runs ----------------------------------------------------------------------------------

    def _locate_run(self, run_id: str, rescan: bool) -> ProjectDB:
        path = None if rescan else self._run_paths.get(run_id)
        if path is not None:
            return self._db(path)
        for db in self._project_dbs():
            if db.has_run(run_id):
                self._run_paths[run_id] = db.path
                return db
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)

    @contextmanager
    def _run_tx(self, run_id: str, write: bool = True, active: bool = True):
        """The run's database, an open transaction and (lifecycle, name, status, end_time)."""
        for rescan in (False, True):
            db = self._locate_run(run_id, rescan)
            with db.write() if write else db.read() as conn:
                state = db.run_state(conn, run_id)
                if state is None:
                    continue
                if active and state[0] != LifecycleStage.ACTIVE:
                    raise MlflowException(
                        f"The run {run_id} must be in the 'active' state. "
                        f"Current state is {state[0]}.",
                        INVALID_PARAMETER_VALUE,
                    )
                yield db, conn, state
                return
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)

    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        db, experiment = self._experiment(experiment_id)
        if experiment["lifecycle_stage"] != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The experiment {experiment['experiment_id']} must be in the 'active' state. "
                f"Current state is {experiment['lifecycle_stage']}.",
                INVALID_PARAMETER_VALUE,
            )
        _check_timestamp(start_time, "start_time")
        tags = list(tags or [])
        for tag in tags:
            _validate_tag(tag.key, tag.value)
        name_tag = next((t.value for t in reversed(tags) if t.key == MLFLOW_RUN_NAME), None)
        if run_name and name_tag and run_name != name_tag:
            raise MlflowException(
                "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
                f"different values (run_name='{run_name}', mlflow.runName='{name_tag}').",
                INVALID_PARAMETER_VALUE,
            )
        run_name = run_name or name_tag or _generate_random_name()
        if not name_tag:
            tags.append(RunTag(MLFLOW_RUN_NAME, run_name))
        import uuid

        run_id = uuid.uuid4().hex
        row = {
            "run_id": run_id,
            "name": run_name,
            "user_id": user_id,
            "status": RunStatus.to_string(RunStatus.RUNNING),
            "start_time": start_time,
            "artifact_uri": append_to_uri_path(
                experiment["artifact_location"], run_id, _ARTIFACTS_FOLDER
            ),
        }
        with db.write() as conn:
            db.insert_run(conn, row, [(t.key, t.value) for t in tags], _run_owner())
            self._refresh_config(db, conn, run_id)
        self._run_paths[run_id] = db.path
        return self.get_run(run_id)

    def get_run(self, run_id):
        _validate_run_id(run_id)
        db = self._locate_run(run_id, rescan=False)
        loaded = db.load_runs([run_id]).get(run_id)
        if loaded is None:
            db = self._locate_run(run_id, rescan=True)
            loaded = db.load_runs([run_id])[run_id]
        experiment_id = db.experiment()["experiment_id"]
        return self._to_run(experiment_id, loaded)

    @staticmethod
    def _to_run(experiment_id: str, loaded: dict) -> Run:
        run_id, name, user_id, status, start_time, end_time, stage, artifact_uri = loaded["info"]
        info = RunInfo(
            run_id=run_id,
            experiment_id=experiment_id,
            user_id=user_id,
            status=status,
            start_time=start_time,
            end_time=end_time,
            lifecycle_stage=stage,
            artifact_uri=artifact_uri,
            run_name=name,
        )
        metrics = [
            Metric(key, float("nan") if is_nan else value, timestamp, step)
            for key, value, timestamp, step, is_nan in loaded["metrics"]
        ]
        data = RunData(
            metrics=metrics,
            params=[Param(k, v) for k, v in loaded["params"].items()],
            tags=[RunTag(k, v) for k, v in loaded["tags"].items()],
        )
        inputs = [
            DatasetInput(
                Dataset(*item["dataset"]), [InputTag(k, v) for k, v in item["tags"]]
            )
            for item in loaded["inputs"].values()
        ]
        outputs = [LoggedModelOutput(model_id, step) for model_id, step in loaded["outputs"]]
        return Run(info, data, RunInputs(dataset_inputs=inputs), RunOutputs(outputs))

    def update_run_info(self, run_id, run_status, end_time, run_name):
        with self._run_tx(run_id) as (db, conn, _):
            fields = {}
            if run_status is not None:
                fields["status"] = RunStatus.to_string(run_status)
            if end_time is not None:
                fields["end_time"] = end_time
            if run_name:
                fields["name"] = run_name
                db.set_tags(conn, run_id, [(MLFLOW_RUN_NAME, run_name)])
            if fields:
                db.update_run(conn, run_id, **fields)
                self._refresh_config(db, conn, run_id)
            row = conn.execute(
                "SELECT run_id, name, user_id, status, start_time, end_time, lifecycle_stage, "
                "artifact_uri FROM mlflow_runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if run_status is not None and RunStatus.is_terminated(run_status):
                _media.publish_run_images(conn, db.path, run_id, row[1], row[7])
        experiment_id = db.experiment()["experiment_id"]
        return self._to_run(
            experiment_id,
            {"info": row, "metrics": [], "params": {}, "tags": {}, "inputs": {}, "outputs": []},
        ).info

    def delete_run(self, run_id):
        with self._run_tx(run_id, active=False) as (db, conn, _):
            db.update_run(
                conn, run_id, lifecycle_stage=LifecycleStage.DELETED,
                deleted_time=get_current_time_millis(),
            )
            self._refresh_config(db, conn, run_id)

    def restore_run(self, run_id):
        with self._run_tx(run_id, active=False) as (db, conn, _):
            db.update_run(conn, run_id, lifecycle_stage=LifecycleStage.ACTIVE, deleted_time=None)
            self._refresh_config(db, conn, run_id)

    def set_tag(self, run_id, tag):
        self.log_batch(run_id, metrics=[], params=[], tags=[tag])

    def delete_tag(self, run_id, key):
        with self._run_tx(run_id) as (db, conn, _):
            if not db.delete_tag(conn, run_id, key):
                raise MlflowException(
                    f"No tag with name: {key} in run with id {run_id}", RESOURCE_DOES_NOT_EXIST
                )
            self._refresh_config(db, conn, run_id)

    def _refresh_config(self, db: ProjectDB, conn, run_id: str) -> None:
        """Rewrite the run's Trackio config: params as top-level keys (as the dashboard shows
        configs), MLflow's tags and state under ``_mlflow_*`` keys, and the parent run's name as
        ``_Group`` so nested runs group under their parent."""
        run, params, tags = db.run_config_sources(conn, run_id)
        name, user_id, status, start_time, stage = run
        parent_id = tags.get(MLFLOW_PARENT_RUN_ID)
        group = (db.run_name(conn, parent_id) or parent_id) if parent_id else None
        config = {
            **params,
            "_Username": tags.get(MLFLOW_USER, user_id),
            "_Created": _db.iso_from_ms(start_time or 0),
            "_Group": group,
            "_mlflow_run_id": run_id,
            "_mlflow_status": status,
            "_mlflow_lifecycle_stage": stage,
            "_mlflow_tags": tags,
        }
        db.write_config(conn, run_id, name, config, start_time or 0)

    # --- logging -------------------------------------------------------------------------------

    def log_batch(self, run_id, metrics, params, tags):
        _validate_run_id(run_id)
        _validate_batch_log_limits(metrics, params, tags)
        columns = _metric_columns(metrics)
        params = [_validate_param(p.key, p.value, path=f"params[{i}]") for i, p in enumerate(params)]
        tags = [_validate_tag(t.key, t.value, path=f"tags[{i}]") for i, t in enumerate(tags)]
        _validate_param_keys_unique(params)
        with self._run_tx(run_id) as (db, conn, state):
            run_name = state[1]
            if params:
                self._log_params(db, conn, run_id, params)
            if columns[0]:
                self._log_metrics(db, conn, run_id, run_name, columns)
            if tags:
                new_name = next((t.value for t in reversed(tags) if t.key == MLFLOW_RUN_NAME), None)
                if new_name:
                    db.update_run(conn, run_id, name=new_name)
                # Later duplicates of a key win, as in MLflow.
                db.set_tags(conn, run_id, {t.key: t.value for t in tags}.items())
            if params or tags:
                self._refresh_config(db, conn, run_id)

    @staticmethod
    def _log_params(db: ProjectDB, conn, run_id: str, params: list[Param]) -> None:
        existing = db.params(conn, run_id, [p.key for p in params])
        changed = [
            {"key": p.key, "old_value": existing[p.key], "new_value": p.value}
            for p in params
            if p.key in existing and existing[p.key] != p.value
        ]
        if changed:
            raise MlflowException(
                "Changing param values is not allowed. Params were already"
                f" logged='{changed}' for run ID='{run_id}'.",
                INVALID_PARAMETER_VALUE,
            )
        db.insert_params(conn, run_id, [(p.key, p.value) for p in params if p.key not in existing])

    @staticmethod
    def _log_metrics(db: ProjectDB, conn, run_id: str, run_name: str, columns: tuple) -> int:
        """Write validated metric points, given as columns (keys, values, timestamps_ms, steps):
        Trackio rows for the dashboard plus MLflow's latest value per key, in the caller's
        transaction. Returns how many points were new."""
        keys, values, timestamps, steps = columns
        encodings = {key: _key_encoding(key) for key in set(keys)}
        # Points already stored are skipped: one point per (key, step, timestamp, value), as
        # MLflow's SQL store keeps them (so a retried batch changes nothing).
        stored = set()
        # Rows of this window that only hold metrics can take more keys of their (step,
        # timestamp): a step whose keys arrive in two batches stays one Trackio row.
        open_rows: dict[tuple, list[tuple[int, dict]]] = {}
        for system in {encoding[0] for encoding in encodings.values()}:
            table, prefix = ("system_metrics", SYSTEM_PREFIX) if system else ("metrics", "")
            window = db.existing_points(conn, table, run_id, min(timestamps), max(timestamps))
            for row_id, step, ts, text in window:
                data = orjson.loads(text)
                numeric = True
                for trackio_key, raw in data.items():
                    value = _db.number_from_json(raw)
                    if system and trackio_key == "step":
                        continue
                    if value is None:
                        numeric = False
                        continue
                    key = prefix + _db.mlflow_metric_key(trackio_key)
                    stored.add((key, step, ts, value if value == value else _NAN))
                if numeric:
                    row_values = {
                        json.dumps(k, ensure_ascii=False): _db.number_from_json(v)
                        for k, v in data.items()
                    }
                    open_rows.setdefault((system, step, ts), []).append((row_id, row_values))

        if stored:
            new = [
                (k, v, t, s)
                for k, v, t, s in zip(keys, values, timestamps, steps)
                if (k, s, t, v if v == v else _NAN) not in stored
            ]
            if not new:
                return 0
            keys, values, timestamps, steps = zip(*new)
        quoted = {key: encoding[1] for key, encoding in encodings.items()}
        system_keys = {key for key, encoding in encodings.items() if encoding[0]}
        # Points in strictly increasing (step, timestamp) order (mostly decided by the steps
        # alone) each have their own rank, and a key's last point is its latest.
        in_order = all(map(operator.lt, steps, islice(steps, 1, None)))
        if not in_order:
            ranks = list(zip(steps, timestamps))
            in_order = all(map(operator.lt, ranks, islice(ranks, 1, None)))
        if not system_keys and not open_rows and (
            in_order or len(set(zip(steps, timestamps))) == len(keys)
        ):
            # One point per (step, timestamp), the shape of a one-key series: a row each, and a
            # key's latest point is the one with the largest (step, timestamp).
            written = len(keys)
            if in_order:
                last = dict(zip(keys, range(written)))
                latest = {k: ((steps[i], timestamps[i]), values[i]) for k, i in last.items()}
            else:
                ordered = sorted(zip(steps, timestamps, values, keys))
                latest = {k: ((s, t), v) for s, t, v, k in ordered}
            metric_rows = [None] * (3 * written)
            metric_rows[0::3] = timestamps
            metric_rows[1::3] = steps
            heads = {key: "{" + text + ":" for key, text in quoted.items()}
            texts = _db.json_numbers(values)
            metric_rows[2::3] = [heads[k] + t + "}" for k, t in zip(keys, texts)]
            system_rows = []
        else:
            points = list(zip(keys, values, timestamps, steps))
            latest = _latest_points(points)
            written, metric_rows, system_rows, updates = _group_rows(
                points, quoted, system_keys, open_rows
            )
            for system, rows in ((False, updates[False]), (True, updates[True])):
                if rows:
                    db.update_rows(conn, "system_metrics" if system else "metrics", rows)
        if metric_rows:
            db.insert_metric_rows(conn, run_id, run_name, metric_rows)
        if system_rows:
            db.insert_system_rows(conn, run_id, run_name, system_rows)
        db.upsert_latest_metrics(
            conn,
            run_id,
            [
                (key, value if value == value else None, ts, step, int(value != value))
                for key, ((step, ts), value) in latest.items()
            ],
        )
        return written

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        try:
            with self._run_tx(run_id, write=False, active=False) as (db, _, _):
                pass
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return PagedList([], None)  # as MLflow's SQL store answers for an unknown run
        system = metric_key.startswith(SYSTEM_PREFIX)
        trackio_key = _db.trackio_metric_key(metric_key[len(SYSTEM_PREFIX):] if system else metric_key)
        # Pages continue after the last point returned (a keyset, not an offset), so reading
        # a long history page by page reads each row once.
        start = _decode_history_token(page_token)
        skip = start[2] if start else 0
        limit = None if max_results is None else skip + max_results + 1
        found, read = db.metric_history(run_id, trackio_key, system, start=start and start[:2], limit=limit)
        if limit is not None and read >= limit and found:
            # The last (timestamp, step) may be cut short: read it whole, to order it by value.
            last = (found[-1][1], found[-1][0])
            found = [p for p in found if (p[1], p[0]) != last]
            found += db.metric_history(run_id, trackio_key, system, only=last)[0]
        points = [(ts, step, value) for step, ts, value in found]
        # MLflow's SQL store orders by (timestamp, step, value), with NaN stored as 0.
        points.sort(key=lambda p: (p[0], p[1], _sanitized(p[2])))
        points = points[skip:]
        if max_results is None or len(points) <= max_results and read < (limit or 0):
            page, token = points, None
        else:
            page = points[:max_results]
            last = page[-1][:2] if page else None
            done_in_group = sum(1 for p in page if p[:2] == last)
            if start and last == start[:2]:
                done_in_group += skip
            token = _encode_history_token(*last, done_in_group) if last else None
        return PagedList([Metric(metric_key, value, ts, step) for ts, step, value in page], token)

    def log_inputs(self, run_id, datasets=None, models=None):
        _validate_run_id(run_id)
        if datasets is not None:
            if not isinstance(datasets, list):
                raise TypeError(f"Argument 'datasets' should be a list, got '{type(datasets)}'")
            _validate_dataset_inputs(datasets)
        unique: dict[tuple, DatasetInput] = {}
        for dataset_input in datasets or []:
            if dataset_input.dataset is None:
                raise MlflowException(
                    "Dataset input must have a dataset associated with it.", INVALID_PARAMETER_VALUE
                )
            key = (dataset_input.dataset.name, dataset_input.dataset.digest)
            unique.setdefault(key, dataset_input)
        with self._run_tx(run_id) as (db, conn, _):
            db.log_inputs(
                conn,
                run_id,
                [
                    (
                        {f: getattr(d.dataset, f) for f in _DATASET_FIELDS},
                        [(t.key, t.value) for t in d.tags],
                    )
                    for d in unique.values()
                ],
            )

    def log_outputs(self, run_id, models):
        with self._run_tx(run_id) as (db, conn, _):
            db.log_outputs(conn, run_id, [(m.model_id, m.step) for m in models])

    def link_traces_to_run(self, trace_ids, run_id):
        if not trace_ids:
            return
        if len(trace_ids) > 100:
            raise MlflowException(
                "Cannot link more than 100 traces to a run in a single request. "
                f"Provided {len(trace_ids)} traces.",
                INVALID_PARAMETER_VALUE,
            )
        with self._run_tx(run_id, active=False) as (db, conn, _):
            db.link_traces(conn, run_id, list(trace_ids))

    def import_run(self, experiment_id: str, run: Run, batches, artifact_uri: str, on_batch=None) -> int:
        """Insert ``run`` keeping its id, times and status, or complete it if it is already here,
        in one transaction; ``batches`` yields lists of (key, value, timestamp_ms, step). Points
        already stored are not written again. Returns how many points were new. Used by
        ``mytracker copy``; an imported run has no owning process here.
        """
        db, _ = self._experiment(experiment_id)
        info, run_id = run.info, run.info.run_id
        written = 0
        with db.write() as conn:
            state = db.run_state(conn, run_id)
            if state is None:
                row = {
                    "run_id": run_id, "name": info.run_name, "user_id": info.user_id,
                    "status": info.status, "start_time": info.start_time,
                    "artifact_uri": artifact_uri,
                }
                db.insert_run(conn, row, list(run.data.tags.items()), None)
                state = (LifecycleStage.ACTIVE, info.run_name, info.status, None)
            else:
                db.set_tags(conn, run_id, list(run.data.tags.items()))
            wanted = {
                "lifecycle_stage": info.lifecycle_stage, "name": info.run_name,
                "status": info.status, "end_time": info.end_time,
            }
            fields = {k: wanted[k] for k, old in zip(wanted, state) if wanted[k] != old}
            if fields.get("lifecycle_stage") == LifecycleStage.DELETED:
                fields["deleted_time"] = info.end_time or info.start_time
            if fields:
                db.update_run(conn, run_id, **fields)
            existing = db.params(conn, run_id, list(run.data.params))
            db.insert_params(
                conn, run_id, [(k, v) for k, v in run.data.params.items() if k not in existing]
            )
            if run.inputs and run.inputs.dataset_inputs:
                db.log_inputs(
                    conn,
                    run_id,
                    [
                        (
                            {f: getattr(d.dataset, f) for f in _DATASET_FIELDS},
                            [(t.key, t.value) for t in d.tags],
                        )
                        for d in run.inputs.dataset_inputs
                    ],
                )
            for batch in batches:
                if batch:
                    keys, values, timestamps, steps = zip(*batch)
                    columns = (keys, tuple(map(float, values)), timestamps, steps)
                    written += self._log_metrics(db, conn, run_id, info.run_name, columns)
                if on_batch:
                    on_batch(len(batch))
            self._refresh_config(db, conn, run_id)
            if RunStatus.is_terminated(RunStatus.from_string(info.status)):
                _media.publish_run_images(conn, db.path, run_id, info.run_name, artifact_uri)
        self._run_paths[run_id] = db.path
        return written

    # --- runs whose process died ------------------------------------------------------------

    def close_dead_runs(self, dry_run: bool = False) -> list[tuple[str, str]]:
        """Mark KILLED the RUNNING runs whose creating process on this host is gone.

        Returns (experiment name, run id) per such run; the end time is the run's last metric
        timestamp. Runs created through a tracking server, or on another host, are left alone.

        >>> TrackioStore("trackio://").close_dead_runs()  # doctest: +SKIP
        """
        import socket

        host = socket.gethostname()
        closed = []
        for db, experiment in self._experiments():
            for run_id, owner_host, pid, started, last_ms in db.running_runs():
                if owner_host != host or _process_alive(pid, started):
                    continue
                closed.append((experiment["name"], run_id))
                if not dry_run:
                    self.update_run_info(
                        run_id, RunStatus.KILLED, last_ms or get_current_time_millis(), None
                    )
        return closed

    # --- search --------------------------------------------------------------------------------

    def _search_runs(
        self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
    ):
        _validate_max_results(max_results, allow_null=True)
        clauses = [_clause(c) for c in SearchUtils.parse_search_filter(filter_string)]
        orders = [_order(o) for o in order_by or []]
        seen = set()
        for kind, key, _ in orders:
            if (kind, key) in seen:
                raise MlflowException(f"`order_by` contains duplicate fields: {order_by}")
            seen.add((kind, key))
        stages = LifecycleStage.view_type_to_stages(run_view_type)
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)

        found: list[tuple] = []  # (row, db, experiment_id)
        for experiment_id in dict.fromkeys(str(_parse_experiment_id(e)) for e in experiment_ids):
            located = self._find_experiment(experiment_id)
            if located is None:
                continue
            db = located[0]
            rows = db.search_runs(stages, clauses, [(kind, key) for kind, key, _ in orders])
            found.extend((row, db, experiment_id) for row in rows)

        # The SQL store's order: each order key (present values first, then NaN, then missing),
        # then start_time descending unless ordered by it, then run id. Stable sorts, last first.
        found.sort(key=lambda item: item[0][0])
        if not any(kind == "attribute" and key == "start_time" for kind, key, _ in orders):
            found.sort(key=lambda item: item[0][1] if item[0][1] is not None else -math.inf, reverse=True)
        for i in reversed(range(len(orders))):
            kind, key, ascending = orders[i]
            blank = "" if _is_text_order(kind, key) else 0
            found.sort(
                key=lambda item: item[0][3 + 2 * i] if item[0][2 + 2 * i] == 0 else blank,
                reverse=not ascending,
            )
            found.sort(key=lambda item: item[0][2 + 2 * i])

        end = len(found) if max_results is None else offset + max_results
        token = SearchUtils.create_page_token(end) if end < len(found) else None
        page = found[offset:end]
        by_db: dict[Path, list[str]] = {}
        for row, db, _ in page:
            by_db.setdefault(db.path, []).append(row[0])
        loaded = {}
        for path, run_ids in by_db.items():
            loaded.update(self._db(path).load_runs(run_ids))
        runs = [self._to_run(experiment_id, loaded[row[0]]) for row, _, experiment_id in page]
        return runs, token


class _NumericIdExperiment:
    """Sort view of an experiment whose id compares as the integer it is."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.experiment_id = int(experiment.experiment_id)
        self.name = experiment.name
        self.creation_time = experiment.creation_time
        self.last_update_time = experiment.last_update_time


def _encode_history_token(timestamp_ms: int, step: int, done: int) -> str:
    raw = json.dumps({"after": [timestamp_ms, step, done]}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_history_token(token: str | None) -> tuple[int, int, int] | None:
    if not token:
        return None
    try:
        timestamp_ms, step, done = json.loads(base64.urlsafe_b64decode(token))["after"]
        return int(timestamp_ms), int(step), int(done)
    except Exception:
        raise MlflowException(f"Invalid page token {token!r}", INVALID_PARAMETER_VALUE) from None


def _parse_experiment_id(experiment_id) -> str:
    try:
        return str(int(experiment_id))
    except (TypeError, ValueError):
        raise MlflowException(
            f"Invalid experiment ID '{experiment_id}'. Experiment ID must be a valid integer.",
            INVALID_PARAMETER_VALUE,
        ) from None


def _validate_max_results(max_results, allow_null=False) -> None:
    if (not allow_null and max_results is None) or (max_results is not None and max_results < 1):
        raise MlflowException(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be "
            "a positive integer",
            INVALID_PARAMETER_VALUE,
        )
    if max_results is not None and max_results > SEARCH_MAX_RESULTS_THRESHOLD:
        raise MlflowException(
            f"Invalid value {max_results} for parameter 'max_results' supplied. It must be at "
            f"most {SEARCH_MAX_RESULTS_THRESHOLD}",
            INVALID_PARAMETER_VALUE,
        )


_MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last one ISO text holds


def _check_timestamp(timestamp_ms, path: str) -> None:
    if timestamp_ms is not None and not 0 <= timestamp_ms <= _MAX_TIMESTAMP_MS:
        raise MlflowException(
            f"Invalid value {timestamp_ms} for parameter '{path}': the Trackio store keeps "
            "timestamps as ISO dates, so they must lie between 1970 and 9999 "
            f"(0 to {_MAX_TIMESTAMP_MS} ms).",
            INVALID_PARAMETER_VALUE,
        )


def _metric_columns(metrics: Sequence[Metric]) -> tuple[list, list, list, list]:
    """(keys, values, timestamps_ms, steps) of metrics, validated as MLflow validates them. The
    whole batch is checked at once, and each distinct key's name only when first seen: this is
    the hot path of every metric logged."""
    if not metrics:
        return [], [], [], []
    try:  # MLflow's Metric keeps its fields in these attributes; reading them skips 4 calls
        keys = [m._key for m in metrics]
        values = [m._value for m in metrics]
        timestamps = [m._timestamp for m in metrics]
        steps = [m._step for m in metrics]
    except AttributeError:
        keys = [m.key for m in metrics]
        values = [m.value for m in metrics]
        timestamps = [m.timestamp for m in metrics]
        steps = [m.step for m in metrics]
    if not (
        _NUMBER_TYPES.issuperset(map(type, values))
        and _INT_TYPE.issuperset(map(type, timestamps))
        and _INT_TYPE.issuperset(map(type, steps))
        and 0 <= min(timestamps)
        and max(timestamps) <= _MAX_TIMESTAMP_MS
        and _VALID_KEYS.issuperset(keys)
    ):
        for index, (key, value, timestamp_ms, step) in enumerate(
            zip(keys, values, timestamps, steps)
        ):
            if not (
                type(value) in _NUMBER_TYPES
                and type(timestamp_ms) is int
                and 0 <= timestamp_ms <= _MAX_TIMESTAMP_MS
                and type(step) is int
                and key in _VALID_KEYS
            ):
                _validate_metric(key, value, timestamp_ms, step, path=f"metrics[{index}]")
                _check_timestamp(timestamp_ms, f"metrics[{index}].timestamp")
                if len(_VALID_KEYS) > 100_000:
                    _VALID_KEYS.clear()
                _VALID_KEYS.add(key)
        timestamps, steps = list(map(int, timestamps)), list(map(int, steps))
    return keys, list(map(float, values)), timestamps, steps


_NUMBER_TYPES = {float, int}
_INT_TYPE = {int}


def _clause(parsed: dict) -> tuple:
    """A parsed MLflow filter clause as (kind, key, comparator, value) for ``_db``."""
    kind, comparator, value = parsed["type"], parsed["comparator"].upper(), parsed["value"]
    key = SearchUtils.translate_key_alias(parsed["key"])
    if SearchUtils.is_metric(kind, comparator):
        return ("metric", key, comparator, float(value))
    if SearchUtils.is_param(kind, comparator):
        return ("param", key, comparator, value)
    if SearchUtils.is_tag(kind, comparator):
        return ("tag", key, comparator, value)
    if SearchUtils.is_string_attribute(kind, key, comparator):
        if key == "run_name":
            return ("run_name", key, comparator, value)
        return ("attribute", "run_id" if key == "run_id" else key, comparator, value)
    if SearchUtils.is_numeric_attribute(kind, key, comparator):
        return ("attribute", key, comparator, int(value) if isinstance(value, str) else value)
    if SearchUtils.is_dataset(kind, comparator):
        return ("dataset_context" if key == "context" else "dataset", key, comparator, value)
    raise MlflowException(f"Invalid search expression type '{kind}'", INVALID_PARAMETER_VALUE)


def _order(order_by: str) -> tuple[str, str, bool]:
    kind, key, ascending = SearchUtils.parse_order_by_for_search_runs(order_by)
    key = SearchUtils.translate_key_alias(key)
    if kind == "attribute":
        return ("attribute", "name" if key == "run_name" else key, ascending)
    if kind not in ("metric", "parameter", "tag"):
        raise MlflowException(f"Invalid identifier type '{kind}'", INVALID_PARAMETER_VALUE)
    return ("param" if kind == "parameter" else kind, key, ascending)


def _is_text_order(kind: str, key: str) -> bool:
    return kind in ("param", "tag") or (kind == "attribute" and key in _STRING_ATTRIBUTES | {"name"})


# --- what the store does not keep -----------------------------------------------------------

# Base-class methods that already work on top of the methods above.
_INHERITED_OK = {
    "log_metric", "log_param", "log_metric_async", "log_param_async", "set_tag_async",
    "log_batch_async", "end_async_logging", "flush_async_logging", "shut_down_async_logging",
    "search_runs", "get_metric_history_bulk_interval_from_steps",
    "get_metric_history_bulk_interval", "supports_workspaces", "supports_trace_archival",
}
# Listing calls that MLflow's UI and server make: an empty answer, not an error.
_EMPTY_LISTINGS = {
    "search_logged_models": lambda *a, **k: PagedList([], None),
    "search_traces": lambda *a, **k: ([], None),
    "search_datasets": lambda *a, **k: PagedList([], None),
    "list_scorers": lambda *a, **k: [],
    "list_scorers_across_experiments": lambda *a, **k: [],
    # GenAI pages of the UI (experiment overview, issues, review): nothing to list.
    "query_trace_metrics": lambda *a, **k: PagedList([], None),
    "search_issues": lambda *a, **k: PagedList([], None),
    "list_label_schemas": lambda *a, **k: PagedList([], None),
    "list_review_queues": lambda *a, **k: PagedList([], None),
}


def _unsupported(name: str):
    def method(self, *args, **kwargs):
        raise MlflowException(
            f"The Trackio tracking store does not support '{name}': it keeps experiments, runs, "
            "params, tags, metrics, datasets and artifacts. Use a SQL tracking store for the "
            "model registry, logged models, traces and GenAI features.",
            NOT_IMPLEMENTED,
        )

    method.__name__ = name
    return method


def _named_errors(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except DatabaseError as e:
            raise _wrap_db_errors(e) from e

    return wrapper


def _install_unsupported() -> None:
    """Make every base-class method the store does not implement fail loudly, never return None
    by accident (AbstractStore's abstract methods are not enforced)."""
    own = set(vars(TrackioStore))
    for klass in AbstractStore.__mro__:
        for name, member in vars(klass).items():
            if name.startswith("_") or name in own or name in _INHERITED_OK:
                continue
            if not inspect.isfunction(member):
                continue
            if name in _EMPTY_LISTINGS:
                setattr(TrackioStore, name, _EMPTY_LISTINGS[name])
            else:
                setattr(TrackioStore, name, _unsupported(name))
            own.add(name)


_install_unsupported()
for _name, _member in list(vars(TrackioStore).items()):
    if (not _name.startswith("_") or _name == "_search_runs") and inspect.isfunction(_member):
        setattr(TrackioStore, _name, _named_errors(_member))
