"""``TrackioStore``: MLflow's tracking-store contract over Trackio project databases.

This is the one place where MLflow concepts are translated: an experiment is a Trackio project
file, a run is a Trackio run with the same id, params and tags become the run's Trackio config,
and every metric point becomes Trackio metric data. MLflow's own SQLite store is the reference
for every answer and every error. Where things live: which file holds what in ``_catalog``,
metric points in ``_metrics``, what the dashboard shows in ``_dashboard``, SQL in ``_db``.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import math
import os
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    NOT_IMPLEMENTED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
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
    _validate_param,
    _validate_param_keys_unique,
    _validate_run_id,
    _validate_tag,
)

from mytracker.store import _dashboard, _db, _metrics
from mytracker.store._catalog import Catalog
from mytracker.store._db import DatabaseError, DatasetInputRow, ExperimentRow, ProjectDB, RunRecord
from mytracker.store._uri import data_dir_from_uri

_logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT_ID = "0"
_ARTIFACTS_FOLDER = "artifacts"
_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")
_STRING_ATTRIBUTES = {"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}


@contextmanager
def _mlflow_errors() -> Iterator[None]:
    """A project file that cannot be used is MLflow's INVALID_STATE, with the file's message."""
    try:
        yield
    except DatabaseError as e:
        raise MlflowException(str(e), INVALID_STATE) from e


def _require_active(kind: str, entity_id: str, stage: str) -> None:
    """MLflow's SQL store's check before writing to a run or an experiment."""
    if stage != LifecycleStage.ACTIVE:
        raise MlflowException(
            f"The {kind} {entity_id} must be in the 'active' state. Current state is {stage}.",
            INVALID_PARAMETER_VALUE,
        )


def _dataset_rows(dataset_inputs) -> list[DatasetInputRow]:
    return [
        DatasetInputRow(
            tuple(getattr(d.dataset, f) for f in _DATASET_FIELDS), [(t.key, t.value) for t in d.tags]
        )
        for d in dataset_inputs
    ]


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


# --- search helpers ------------------------------------------------------------------------


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
        with _mlflow_errors():
            return method(*args, **kwargs)

    return wrapper


def _complete_store(cls: type) -> type:
    """Finish the store class: every public method answers a damaged or locked file with
    MLflow's INVALID_STATE, and every base-class method it does not implement fails loudly (or,
    for listings MLflow's UI makes, answers empty) instead of returning None by accident
    (AbstractStore's abstract methods are not enforced)."""
    own = set(vars(cls))
    for klass in AbstractStore.__mro__:
        for name, member in vars(klass).items():
            if name.startswith("_") or name in own or name in _INHERITED_OK:
                continue
            if not inspect.isfunction(member):
                continue
            setattr(cls, name, _EMPTY_LISTINGS.get(name) or _unsupported(name))
            own.add(name)
    for name, member in list(vars(cls).items()):
        if (not name.startswith("_") or name == "_search_runs") and inspect.isfunction(member):
            setattr(cls, name, _named_errors(member))
    return cls


@_complete_store
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
        # Trackio's dashboard lists them (see `_dashboard`).
        self.artifact_uri = artifact_uri
        self._catalog = Catalog(self.data_dir)
        if os.environ.get("_MLFLOW_SERVER_FILE_STORE"):
            _configure_registry_mappers()
        _drain_at_exit(self)
        if self._catalog.find_experiment(DEFAULT_EXPERIMENT_ID) is None:
            with _mlflow_errors(), self._catalog.directory_lock():
                if self._catalog.find_experiment(DEFAULT_EXPERIMENT_ID) is None:
                    self._catalog.create_experiment_file(
                        DEFAULT_EXPERIMENT_ID, Experiment.DEFAULT_EXPERIMENT_NAME, None,
                        self.artifact_uri, get_current_time_millis(), {},
                    )

    # --- experiments ---------------------------------------------------------------------------

    def _experiment(self, experiment_id, stages=None) -> tuple[ProjectDB, ExperimentRow]:
        experiment_id = str(experiment_id) if experiment_id is not None else DEFAULT_EXPERIMENT_ID
        found = self._catalog.find_experiment(experiment_id)
        if found is None or (stages and found[1].lifecycle_stage not in stages):
            raise MlflowException(
                f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST
            )
        return found

    def _active_experiment(self, experiment_id) -> tuple[ProjectDB, ExperimentRow]:
        db, experiment = self._experiment(_parse_experiment_id(experiment_id))
        _require_active("experiment", experiment_id, experiment.lifecycle_stage)
        return db, experiment

    @staticmethod
    def _to_experiment(experiment: ExperimentRow) -> Experiment:
        return Experiment(
            experiment_id=experiment.experiment_id,
            name=experiment.name,
            artifact_location=experiment.artifact_location,
            lifecycle_stage=experiment.lifecycle_stage,
            tags=[ExperimentTag(k, v) for k, v in experiment.tags.items()],
            creation_time=experiment.creation_time,
            last_update_time=experiment.last_update_time,
        )

    def create_experiment(self, name, artifact_location=None, tags=None):
        _validate_experiment_name(name)
        if artifact_location:
            artifact_location = resolve_uri_if_local(artifact_location)
            _validate_experiment_artifact_location_length(artifact_location)
        for tag in tags or []:
            _validate_experiment_tag(tag.key, tag.value)
        with self._catalog.directory_lock():
            experiments = self._catalog.experiments()
            if self.get_experiment_by_name(name) is not None:
                raise MlflowException(
                    f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS
                )
            experiment_id = self._catalog.new_experiment_id(experiments)
            self._catalog.create_experiment_file(
                experiment_id, name, artifact_location, self.artifact_uri,
                get_current_time_millis(), {t.key: t.value for t in tags or []},
            )
        return experiment_id

    def get_experiment(self, experiment_id):
        return self._to_experiment(self._experiment(_parse_experiment_id(experiment_id))[1])

    def get_experiment_by_name(self, experiment_name):
        experiment = self._catalog.find_experiment_by_name(experiment_name)
        return None if experiment is None else self._to_experiment(experiment)

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
            self._to_experiment(e)
            for _, e in self._catalog.experiments()
            if e.lifecycle_stage in stages
        ]
        experiments = SearchExperimentsUtils.filter(experiments, filter_string)
        # MLflow's SQL store sorts experiment ids as integers, by default newest first.
        order_by = list(order_by or ["creation_time DESC", "experiment_id ASC"])
        by_number = sorted(experiments, key=lambda e: int(e.experiment_id))
        keyed = [_NumericIdExperiment(e) for e in by_number]
        ordered = [k.experiment for k in SearchExperimentsUtils.sort(keyed, order_by)]
        page, token = SearchUtils.paginate(ordered, page_token, max_results)
        return PagedList(page, token)

    def filter_active_experiment_ids(self, experiment_ids):
        active = []
        for experiment_id in experiment_ids:
            found = self._catalog.find_experiment(str(experiment_id))
            if found and found[1].lifecycle_stage == LifecycleStage.ACTIVE:
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
            _db.update_experiment(conn, lifecycle_stage=new, last_update_time=now)
            deleted = new == LifecycleStage.DELETED
            _db.set_runs_lifecycle(conn, new, now if deleted else None)

    def rename_experiment(self, experiment_id, new_name):
        _validate_experiment_name(new_name)
        with self._catalog.directory_lock():
            db, experiment = self._experiment(_parse_experiment_id(experiment_id))
            if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
                raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
            if new_name != experiment.name and self.get_experiment_by_name(new_name):
                # BAD_REQUEST, as MLflow's SQL store answers (its unique constraint fails).
                raise MlflowException(f"Experiment(name={new_name}) already exists.", BAD_REQUEST)
            with db.write() as conn:
                _db.update_experiment(conn, name=new_name, last_update_time=get_current_time_millis())

    def set_experiment_tag(self, experiment_id, tag):
        _validate_experiment_tag(tag.key, tag.value)
        db, _ = self._active_experiment(experiment_id)
        with db.write() as conn:
            _db.set_experiment_tag(conn, tag.key, tag.value)

    def delete_experiment_tag(self, experiment_id, key):
        db, _ = self._active_experiment(experiment_id)
        with db.write() as conn:
            if not _db.delete_experiment_tag(conn, key):
                raise MlflowException(
                    f"No tag with name: {key} in experiment with id {experiment_id}",
                    RESOURCE_DOES_NOT_EXIST,
                )

    # --- runs ----------------------------------------------------------------------------------

    def _locate_run(self, run_id: str, rescan: bool) -> ProjectDB:
        db = self._catalog.locate_run(run_id, rescan)
        if db is None:
            raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
        return db

    @contextmanager
    def _run_tx(self, run_id: str, write: bool = True, active: bool = True):
        """The run's database, an open transaction and its `_db.RunState`."""
        for rescan in (False, True):
            db = self._locate_run(run_id, rescan)
            with db.write() if write else db.read() as conn:
                state = _db.run_state(conn, run_id)
                if state is None:
                    continue
                if active:
                    _require_active("run", run_id, state.lifecycle_stage)
                yield db, conn, state
                return
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)

    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        db, experiment = self._experiment(experiment_id)
        _require_active("experiment", experiment.experiment_id, experiment.lifecycle_stage)
        _metrics.check_timestamp(start_time, "start_time")
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
        run_id = uuid.uuid4().hex
        row = {
            "run_id": run_id,
            "name": run_name,
            "user_id": user_id,
            "status": RunStatus.to_string(RunStatus.RUNNING),
            "start_time": start_time,
            "artifact_uri": append_to_uri_path(
                experiment.artifact_location, run_id, _ARTIFACTS_FOLDER
            ),
        }
        with db.write() as conn:
            _db.insert_run(conn, row, [(t.key, t.value) for t in tags], _run_owner())
            _dashboard.refresh_config(conn, run_id)
        self._catalog.remember_run(run_id, db.path)
        return self.get_run(run_id)

    def get_run(self, run_id):
        _validate_run_id(run_id)
        db = self._locate_run(run_id, rescan=False)
        loaded = db.load_runs([run_id]).get(run_id)
        if loaded is None:
            db = self._locate_run(run_id, rescan=True)
            loaded = db.load_runs([run_id])[run_id]
        return self._to_run(db.experiment().experiment_id, loaded)

    @staticmethod
    def _to_run(experiment_id: str, loaded: RunRecord) -> Run:
        info = loaded.info
        run_info = RunInfo(
            run_id=info.run_id,
            experiment_id=experiment_id,
            user_id=info.user_id,
            status=info.status,
            start_time=info.start_time,
            end_time=info.end_time,
            lifecycle_stage=info.lifecycle_stage,
            artifact_uri=info.artifact_uri,
            run_name=info.name,
        )
        metrics = [
            Metric(m.key, float("nan") if m.is_nan else m.value, m.timestamp, m.step)
            for m in loaded.metrics
        ]
        data = RunData(
            metrics=metrics,
            params=[Param(k, v) for k, v in loaded.params.items()],
            tags=[RunTag(k, v) for k, v in loaded.tags.items()],
        )
        inputs = [
            DatasetInput(Dataset(*item.dataset), [InputTag(k, v) for k, v in item.tags])
            for item in loaded.inputs
        ]
        outputs = [LoggedModelOutput(model_id, step) for model_id, step in loaded.outputs]
        return Run(run_info, data, RunInputs(dataset_inputs=inputs), RunOutputs(outputs))

    def update_run_info(self, run_id, run_status, end_time, run_name):
        _metrics.check_int64(end_time, "end_time")
        with self._run_tx(run_id) as (db, conn, _):
            fields = {}
            if run_status is not None:
                fields["status"] = RunStatus.to_string(run_status)
            if end_time is not None:
                fields["end_time"] = end_time
            if run_name:
                fields["name"] = run_name
                _db.set_tags(conn, run_id, [(MLFLOW_RUN_NAME, run_name)])
            if fields:
                _db.update_run(conn, run_id, **fields)
                _dashboard.refresh_config(conn, run_id)
            row = _db.run_row(conn, run_id)
        if run_status is not None and RunStatus.is_terminated(run_status):
            self._publish_images(db, row)
        return self._to_run(db.experiment().experiment_id, RunRecord(row)).info

    @staticmethod
    def _publish_images(db: ProjectDB, row: _db.RunRow) -> None:
        """Show a finished run's images in Trackio's Media view. The artifact files are read
        before the (short) write transaction, not inside it."""
        rows = _dashboard.image_rows(db.path, row.run_id, row.name, row.artifact_uri)
        if rows:
            with db.write() as conn:
                _db.insert_media_rows(conn, rows)

    def delete_run(self, run_id):
        with self._run_tx(run_id, active=False) as (_, conn, _):
            _db.update_run(
                conn, run_id, lifecycle_stage=LifecycleStage.DELETED,
                deleted_time=get_current_time_millis(),
            )
            _dashboard.refresh_config(conn, run_id)

    def restore_run(self, run_id):
        with self._run_tx(run_id, active=False) as (_, conn, _):
            _db.update_run(conn, run_id, lifecycle_stage=LifecycleStage.ACTIVE, deleted_time=None)
            _dashboard.refresh_config(conn, run_id)

    def set_tag(self, run_id, tag):
        self.log_batch(run_id, metrics=[], params=[], tags=[tag])

    def delete_tag(self, run_id, key):
        with self._run_tx(run_id) as (_, conn, _):
            if not _db.delete_tag(conn, run_id, key):
                raise MlflowException(
                    f"No tag with name: {key} in run with id {run_id}", RESOURCE_DOES_NOT_EXIST
                )
            _dashboard.refresh_config(conn, run_id)

    # --- logging -------------------------------------------------------------------------------

    def log_batch(self, run_id, metrics, params, tags):
        _validate_run_id(run_id)
        _validate_batch_log_limits(metrics, params, tags)
        columns = _metrics.metric_columns(metrics)
        params = [_validate_param(p.key, p.value, path=f"params[{i}]") for i, p in enumerate(params)]
        tags = [_validate_tag(t.key, t.value, path=f"tags[{i}]") for i, t in enumerate(tags)]
        _validate_param_keys_unique(params)
        with self._run_tx(run_id) as (_, conn, state):
            if params:
                self._log_params(conn, run_id, params)
            if columns[0]:
                _metrics.log_metrics(conn, run_id, state.name, columns)
            if tags:
                new_name = next((t.value for t in reversed(tags) if t.key == MLFLOW_RUN_NAME), None)
                if new_name:
                    _db.update_run(conn, run_id, name=new_name)
                # Later duplicates of a key win, as in MLflow.
                _db.set_tags(conn, run_id, {t.key: t.value for t in tags}.items())
            if params or tags:
                _dashboard.refresh_config(conn, run_id)

    @staticmethod
    def _log_params(conn, run_id: str, params: list[Param]) -> None:
        existing = _db.params(conn, run_id, [p.key for p in params])
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
        _db.insert_params(conn, run_id, [(p.key, p.value) for p in params if p.key not in existing])

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        try:
            with self._run_tx(run_id, write=False, active=False) as (db, _, _):
                pass
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return PagedList([], None)  # as MLflow's SQL store answers for an unknown run
        return _metrics.metric_history(db, run_id, metric_key, max_results, page_token)

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
        with self._run_tx(run_id) as (_, conn, _):
            _db.log_inputs(conn, run_id, _dataset_rows(unique.values()))

    def log_outputs(self, run_id, models):
        with self._run_tx(run_id) as (_, conn, _):
            _db.log_outputs(conn, run_id, [(m.model_id, m.step) for m in models])

    def link_traces_to_run(self, trace_ids, run_id):
        if not trace_ids:
            return
        if len(trace_ids) > 100:
            raise MlflowException(
                "Cannot link more than 100 traces to a run in a single request. "
                f"Provided {len(trace_ids)} traces.",
                INVALID_PARAMETER_VALUE,
            )
        with self._run_tx(run_id, active=False) as (_, conn, _):
            _db.link_traces(conn, run_id, list(trace_ids))

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
            state = _db.run_state(conn, run_id)
            if state is None:
                row = {
                    "run_id": run_id, "name": info.run_name, "user_id": info.user_id,
                    "status": info.status, "start_time": info.start_time,
                    "artifact_uri": artifact_uri,
                }
                _db.insert_run(conn, row, list(run.data.tags.items()), None)
                state = _db.RunState(LifecycleStage.ACTIVE, info.run_name, info.status, None)
            else:
                _db.set_tags(conn, run_id, list(run.data.tags.items()))
            wanted = {
                "lifecycle_stage": info.lifecycle_stage, "name": info.run_name,
                "status": info.status, "end_time": info.end_time,
            }
            fields = {k: wanted[k] for k, old in zip(wanted, state) if wanted[k] != old}
            if fields.get("lifecycle_stage") == LifecycleStage.DELETED:
                fields["deleted_time"] = info.end_time or info.start_time
            if fields:
                _db.update_run(conn, run_id, **fields)
            existing = _db.params(conn, run_id, list(run.data.params))
            _db.insert_params(
                conn, run_id, [(k, v) for k, v in run.data.params.items() if k not in existing]
            )
            if run.inputs and run.inputs.dataset_inputs:
                _db.log_inputs(conn, run_id, _dataset_rows(run.inputs.dataset_inputs))
            for batch in batches:
                if batch:
                    keys, values, timestamps, steps = zip(*batch)
                    columns = (keys, tuple(map(float, values)), timestamps, steps)
                    written += _metrics.log_metrics(conn, run_id, info.run_name, columns)
                if on_batch:
                    on_batch(len(batch))
            _dashboard.refresh_config(conn, run_id)
            row = _db.run_row(conn, run_id)
        if RunStatus.is_terminated(RunStatus.from_string(info.status)):
            self._publish_images(db, row)
        self._catalog.remember_run(run_id, db.path)
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
        for db, experiment in self._catalog.experiments():
            for run_id, owner_host, pid, started, last_ms in db.running_runs():
                if owner_host != host or _process_alive(pid, started):
                    continue
                closed.append((experiment.name, run_id))
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

        found: list[tuple[_db.SearchRow, ProjectDB, str]] = []
        for experiment_id in dict.fromkeys(str(_parse_experiment_id(e)) for e in experiment_ids):
            located = self._catalog.find_experiment(experiment_id)
            if located is None:
                continue
            db = located[0]
            rows = db.search_runs(stages, clauses, [(kind, key) for kind, key, _ in orders])
            found.extend((row, db, experiment_id) for row in rows)

        # The SQL store's order: each order key (present values first, then NaN, then missing),
        # then start_time descending unless ordered by it, then run id. Stable sorts, last first.
        found.sort(key=lambda item: item[0].run_id)
        if not any(kind == "attribute" and key == "start_time" for kind, key, _ in orders):
            found.sort(
                key=lambda item: -math.inf if item[0].start_time is None else item[0].start_time,
                reverse=True,
            )
        for i in reversed(range(len(orders))):
            kind, key, ascending = orders[i]
            blank = "" if _is_text_order(kind, key) else 0
            found.sort(
                key=lambda item: item[0].order_keys[i][1] if item[0].order_keys[i][0] == 0 else blank,
                reverse=not ascending,
            )
            found.sort(key=lambda item: item[0].order_keys[i][0])

        end = len(found) if max_results is None else offset + max_results
        token = SearchUtils.create_page_token(end) if end < len(found) else None
        page = found[offset:end]
        by_db: dict[Path, list[str]] = {}
        for row, db, _ in page:
            by_db.setdefault(db.path, []).append(row.run_id)
        loaded = {}
        for path, run_ids in by_db.items():
            loaded.update(self._catalog.db(path).load_runs(run_ids))
        runs = [self._to_run(experiment_id, loaded[row.run_id]) for row, _, experiment_id in page]
        return runs, token


class _NumericIdExperiment:
    """Sort view of an experiment whose id compares as the integer it is."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.experiment_id = int(experiment.experiment_id)
        self.name = experiment.name
        self.creation_time = experiment.creation_time
        self.last_update_time = experiment.last_update_time


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
