"""``TrackioStore``: MLflow's tracking-store contract over Trackio project databases.

This is the one place where MLflow concepts are translated: an experiment is a Trackio project
file, a run is a Trackio run with the same id, params and tags become the run's Trackio config,
and every metric point becomes Trackio metric data. MLflow's own SQLite store is the reference
for every answer and every error. Where things live: which file holds what in ``_catalog``,
metric points in ``_metrics``, what the dashboard shows in ``_dashboard``, SQL in ``_db``, and
the projects and runs Trackio's own API wrote (read as experiments and runs, made MLflow's by
the first MLflow write) in ``_native``.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

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
from mlflow.entities.logged_model import LoggedModel
from mlflow.entities.logged_model_output import LoggedModelOutput
from mlflow.entities.logged_model_status import LoggedModelStatus
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
from mlflow.store.tracking import SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT, SEARCH_MAX_RESULTS_THRESHOLD
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.async_logging.run_operations import RunOperations
from mlflow.utils.mlflow_tags import (
    MLFLOW_LOGGED_ARTIFACTS,
    MLFLOW_LOGGED_IMAGES,
    MLFLOW_LOGGED_MODELS,
)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.name_utils import _generate_random_name
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local
from mlflow.utils.validation import (
    MAX_PARAMS_TAGS_PER_BATCH,
    _validate_batch_log_limits,
    _validate_dataset_inputs,
    _validate_experiment_artifact_location_length,
    _validate_experiment_name,
    _validate_experiment_tag,
    _validate_logged_model_name,
    _validate_param,
    _validate_param_keys_unique,
    _validate_run_id,
    _validate_tag,
)

from mytracker.store import _dashboard, _db, _fluent, _metrics, _native
from mytracker.store._catalog import (
    Catalog,
    experiment_filter_sql,
    process_alive,
    process_start,
)
from mytracker.store._db import DatabaseError, DatasetInputRow, ExperimentRow, ProjectDB, RunRecord
from mytracker.store._queue import BatchQueue, QueuedBatch
from mytracker.store._trackio import clamped, finite, project_stem
from mytracker.store._uri import data_dir_from_uri

_logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT_ID = "0"
_ARTIFACTS_FOLDER = "artifacts"
_DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")
_STRING_ATTRIBUTES = {"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}
# MLflow's own schema holds a run name in a VARCHAR(250) (`runs.name`); Trackio copies the name
# into every metric row and an index, so a longer one is refused rather than repeated.
MAX_RUN_NAME_LENGTH = 250
# How often a live run that logged images has its images/ folder read again (see _images_due).
IMAGE_LOOK_INTERVAL_S = 1.0


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


def _check_run_name(run_name: str | None) -> None:
    if run_name is not None and len(run_name) > MAX_RUN_NAME_LENGTH:
        raise MlflowException(
            f"Run name of {len(run_name)} characters is too long: the Trackio store keeps run "
            f"names of at most {MAX_RUN_NAME_LENGTH} characters, as MLflow's SQL schema does.",
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
    """Write what asynchronous logging still holds when the interpreter exits normally.

    The store's writer thread (`_queue`) is a daemon, so it stops, mid-wait, when the
    interpreter does. An atexit hook runs after every non-daemon thread has finished logging
    and before the interpreter stops: it writes the rest, once for all stores.
    """
    global _drain_registered
    if not _drain_registered:
        _drain_registered = True

        def drain() -> None:
            for live in list(_LIVE_STORES):
                live.shut_down_async_logging()

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
    return socket.gethostname(), os.getpid(), process_start(os.getpid())


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


def _order_keys(run: Run, orders: list[tuple[str, str, bool]]) -> tuple:
    """A run entity's (null rank, value) per order key, as `_db.search_runs` gives them."""
    keys = []
    for kind, key, _ in orders:
        if kind == "attribute":
            value = run.info.run_name if key == "name" else getattr(run.info, key, None)
            keys.append((2, None) if value is None else (0, value))
        elif kind == "metric":
            value = run.data.metrics.get(key)
            rank = 2 if value is None else 1 if value != value else 0
            keys.append((rank, clamped(value) if rank == 0 else None))
        else:
            value = (run.data.params if kind == "param" else run.data.tags).get(key)
            keys.append((2, None) if value is None else (0, value))
    return tuple(keys)


def _is_text_order(kind: str, key: str) -> bool:
    return kind in ("param", "tag") or (kind == "attribute" and key in _STRING_ATTRIBUTES | {"name"})


# --- what the store does not keep -----------------------------------------------------------

# Base-class methods that already work on top of the methods above.
_INHERITED_OK = {
    "log_metric", "log_param", "log_metric_async", "log_param_async", "set_tag_async",
    "search_runs", "get_metric_history_bulk_interval_from_steps",
    "get_metric_history_bulk_interval", "supports_workspaces", "supports_trace_archival",
}
def _empty_listing(empty: Callable[[], Any], *, many: bool = False, must_exist: bool = False,
                   deleted_is_missing: bool = False):
    """A listing of something the store does not keep (traces, scorers, review queues, ...):
    an empty answer, after checking its experiment id(s) as MLflow's SQL store does. Ids must be
    integers; with `must_exist`, the experiment must exist and be active (a deleted one is
    refused as not active, or as missing with `deleted_is_missing`)."""

    def method(self, *args, **kwargs):
        given = args[0] if args else kwargs.get("experiment_ids" if many else "experiment_id")
        for experiment_id in (given or []) if many else [given]:
            if experiment_id is None and not must_exist:
                continue
            experiment_id = _parse_experiment_id(experiment_id)
            if must_exist:
                stage = self._experiment(experiment_id)[1].lifecycle_stage
                if deleted_is_missing and stage != LifecycleStage.ACTIVE:
                    raise MlflowException(
                        f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST
                    )
                _require_active("experiment", experiment_id, stage)
        return empty()

    return method


def _empty_page() -> PagedList:
    return PagedList([], None)


# Listing calls that MLflow's UI and server make: an empty answer, not an error.
_EMPTY_LISTINGS = {
    "search_traces": _empty_listing(lambda: ([], None), many=True),
    "search_datasets": lambda *a, **k: _empty_page(),  # MLflow's SQL store checks nothing
    "list_scorers": _empty_listing(list, must_exist=True),
    "list_scorers_across_experiments": _empty_listing(list, many=True),
    # GenAI pages of the UI (experiment overview, issues, review): nothing to list.
    "query_trace_metrics": _empty_listing(_empty_page, many=True),
    "search_issues": _empty_listing(_empty_page),
    "list_label_schemas": _empty_listing(_empty_page, must_exist=True, deleted_is_missing=True),
    "list_review_queues": _empty_listing(_empty_page, must_exist=True, deleted_is_missing=True),
}


def _unsupported(name: str):
    def method(self, *args, **kwargs):
        raise MlflowException(
            f"The Trackio tracking store does not support '{name}': it keeps experiments, runs, "
            "params, tags, metrics, datasets, artifacts and logged models. Use a SQL tracking "
            "store for traces and GenAI features.",
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

    DEFAULT_EXPERIMENT_ID = DEFAULT_EXPERIMENT_ID  # where MLflow's SQL store keeps it too

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
        self._queue = BatchQueue(self._write_queued)
        if os.environ.get("_MLFLOW_SERVER_FILE_STORE"):
            _configure_registry_mappers()
        _drain_at_exit(self)
        _fluent.install()
        # MLflow's experiment "0" exists from the start, but its file is made only when something
        # is written to it: an empty Default.db would be the first project Trackio's dashboard
        # opens. Until then the store answers with `_virtual_default`.
        self._opened_ms = get_current_time_millis()
        self._image_looks: dict[str, float] = {}  # run id -> when its images/ was last read
        self._image_lock = threading.Lock()

    # --- experiments ---------------------------------------------------------------------------

    def _virtual_default(self, synced: bool = False) -> ExperimentRow:
        """Experiment "0" as it will be once its file exists. Like MLflow's, it is older than
        every other experiment of the directory, whichever process asks (`synced`: the catalog
        has looked at the directory in this call)."""
        name = Experiment.DEFAULT_EXPERIMENT_NAME
        first_ms = self._catalog.first_creation_ms(synced)
        created_ms = self._opened_ms if first_ms is None else min(self._opened_ms, first_ms - 1)
        location = (
            append_to_uri_path(self.artifact_uri, DEFAULT_EXPERIMENT_ID)
            if self.artifact_uri
            else _dashboard.default_artifact_location(self.data_dir / f"{project_stem(name)}.db")
        )
        return ExperimentRow(
            experiment_id=DEFAULT_EXPERIMENT_ID, name=name, artifact_location=location,
            lifecycle_stage=LifecycleStage.ACTIVE, creation_time=created_ms,
            last_update_time=created_ms, tags={},
        )

    def _default_file(self) -> tuple[ProjectDB, ExperimentRow]:
        """Experiment "0"'s file, made now (under the directory lock) if no process has yet."""
        with self._catalog.directory_lock():
            if self._catalog.find_experiment(DEFAULT_EXPERIMENT_ID) is None:
                self._catalog.create_experiment_file(
                    DEFAULT_EXPERIMENT_ID, Experiment.DEFAULT_EXPERIMENT_NAME, None,
                    self.artifact_uri, self._virtual_default().creation_time, {},
                )
        return self._catalog.find_experiment(DEFAULT_EXPERIMENT_ID)

    def _experiment(
        self, experiment_id, stages=None, write: bool = False
    ) -> tuple[ProjectDB | None, ExperimentRow]:
        """The experiment's file and row. Experiment "0" without a file is virtual (no file:
        `None`) for reading, and gets its file when `write`."""
        experiment_id = str(experiment_id) if experiment_id is not None else DEFAULT_EXPERIMENT_ID
        found = self._catalog.find_experiment(experiment_id)
        if found is None and experiment_id == DEFAULT_EXPERIMENT_ID:
            found = self._default_file() if write else (None, self._virtual_default())
        if found is None or (stages and found[1].lifecycle_stage not in stages):
            raise MlflowException(
                f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST
            )
        return found

    def _active_experiment(self, experiment_id) -> tuple[ProjectDB, ExperimentRow]:
        db, experiment = self._writable(
            *self._experiment(_parse_experiment_id(experiment_id), write=True)
        )
        _require_active("experiment", experiment_id, experiment.lifecycle_stage)
        return db, experiment

    def _writable(
        self, db: ProjectDB, experiment: ExperimentRow
    ) -> tuple[ProjectDB, ExperimentRow]:
        """The experiment, adopted first if it is a Trackio project mytracker did not make (its
        first MLflow write): from then on its MLflow state lives in its file."""
        if experiment.native:
            _native.adopt(db, experiment)
            self._catalog.refresh(db.path)
            experiment = db.experiment() or experiment._replace(native=False)
        return db, experiment

    def _experiment_of(self, db: ProjectDB) -> ExperimentRow:
        return self._catalog.experiment_in(db)

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
            if self.get_experiment_by_name(name) is not None:
                raise MlflowException(
                    f"Experiment(name={name}) already exists.", RESOURCE_ALREADY_EXISTS
                )
            # Not found by name: the catalog has just looked at the whole directory.
            experiment_id = self._catalog.new_experiment_id(synced=True)
            self._catalog.create_experiment_file(
                experiment_id, name, artifact_location, self.artifact_uri,
                get_current_time_millis(), {t.key: t.value for t in tags or []},
            )
        return experiment_id

    def get_experiment(self, experiment_id):
        return self._to_experiment(self._experiment(_experiment_id_or_default(experiment_id))[1])

    def get_experiment_by_name(self, experiment_name):
        experiment = self._catalog.find_experiment_by_name(experiment_name)
        if experiment is None and experiment_name == Experiment.DEFAULT_EXPERIMENT_NAME:
            _, experiment = self._experiment(DEFAULT_EXPERIMENT_ID)
            if experiment.name != experiment_name:  # "0" was renamed
                experiment = None
        return None if experiment is None else self._to_experiment(experiment)

    def project_file(self, experiment_id: str) -> Path | None:
        """The Trackio project file that holds the experiment (its stem is the project name
        Trackio's dashboard shows), or None while it has none (experiment "0" before its first
        run).

        >>> store.project_file(store.get_experiment_by_name("my experiment").experiment_id)  # doctest: +SKIP
        PosixPath('/data/trackio/myexperiment.db')
        """
        found = self._catalog.find_experiment(str(experiment_id))
        return None if found is None else found[0].path

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
        # The catalog's SQL narrows the rows (experiment "0" always comes, to tell whether its
        # file exists yet); MLflow's own filter below still decides.
        where, args = experiment_filter_sql(SearchExperimentsUtils.parse_search_filter(filter_string))
        if where:
            where, args = f"experiment_id = ? OR ({where})", [DEFAULT_EXPERIMENT_ID, *args]
        found = [e for _, e in self._catalog.search_experiments(where, args)]
        if not any(e.experiment_id == DEFAULT_EXPERIMENT_ID for e in found):
            found.append(self._virtual_default(synced=True))
        # MLflow's filter and sort read the rows' attributes: entities are built for the page only.
        rows = SearchExperimentsUtils.filter(
            [e for e in found if e.lifecycle_stage in stages], filter_string
        )
        # MLflow's SQL store sorts experiment ids as integers, by default newest first.
        order_by = list(order_by or ["creation_time DESC", "experiment_id ASC"])
        by_number = sorted(rows, key=lambda e: int(e.experiment_id))
        keyed = [_NumericIdExperiment(e) for e in by_number]
        ordered = [k.experiment for k in SearchExperimentsUtils.sort(keyed, order_by)]
        page, token = SearchUtils.paginate(ordered, page_token, max_results)
        return PagedList([self._to_experiment(e) for e in page], token)

    def filter_active_experiment_ids(self, experiment_ids):
        active = []
        for experiment_id in experiment_ids:
            found = self._catalog.find_experiment(str(experiment_id))
            if found is None and str(experiment_id) == DEFAULT_EXPERIMENT_ID:
                found = (None, self._virtual_default())
            if found and found[1].lifecycle_stage == LifecycleStage.ACTIVE:
                active.append(experiment_id)
        return active

    def delete_experiment(self, experiment_id):
        self._set_experiment_lifecycle(experiment_id, LifecycleStage.ACTIVE, LifecycleStage.DELETED)

    def restore_experiment(self, experiment_id):
        self._set_experiment_lifecycle(experiment_id, LifecycleStage.DELETED, LifecycleStage.ACTIVE)

    def _set_experiment_lifecycle(self, experiment_id, current: str, new: str) -> None:
        db, _ = self._writable(
            *self._experiment(_parse_experiment_id(experiment_id), [current], write=True)
        )
        now = get_current_time_millis()
        with self._catalog.changing(db.path), db.write() as conn:
            _db.update_experiment(conn, lifecycle_stage=new, last_update_time=now)
            deleted = new == LifecycleStage.DELETED
            _db.set_runs_lifecycle(conn, new, now if deleted else None)

    def rename_experiment(self, experiment_id, new_name):
        _validate_experiment_name(new_name)
        experiment_id = _experiment_id_or_default(experiment_id)
        self._experiment(experiment_id, write=True)  # "0" gets its file (under the same lock)
        with self._catalog.directory_lock():
            db, experiment = self._experiment(experiment_id)
            if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
                raise MlflowException("Cannot rename a non-active experiment.", INVALID_STATE)
            if new_name != experiment.name and self.get_experiment_by_name(new_name):
                # BAD_REQUEST, as MLflow's SQL store answers (its unique constraint fails).
                raise MlflowException(f"Experiment(name={new_name}) already exists.", BAD_REQUEST)
            db, experiment = self._writable(db, experiment)
            with self._catalog.changing(db.path), db.write() as conn:
                _db.update_experiment(conn, name=new_name, last_update_time=get_current_time_millis())

    def set_experiment_tag(self, experiment_id, tag):
        _validate_experiment_tag(tag.key, tag.value)
        db, _ = self._active_experiment(experiment_id)
        with self._catalog.changing(db.path), db.write() as conn:
            _db.set_experiment_tag(conn, tag.key, tag.value)

    def delete_experiment_tag(self, experiment_id, key):
        db, _ = self._active_experiment(experiment_id)
        with self._catalog.changing(db.path), db.write() as conn:
            if not _db.delete_experiment_tag(conn, key):
                raise MlflowException(
                    f"No tag with name: {key} in experiment with id {experiment_id}",
                    RESOURCE_DOES_NOT_EXIST,
                )

    # --- runs ----------------------------------------------------------------------------------

    def _locate_run(self, run_id: str, rescan: bool) -> ProjectDB:
        """The run's file. Every caller checks that the run is in the file it gets, and asks
        again with `rescan` if not."""
        db = self._catalog.locate_run(run_id, rescan)
        if db is None:
            raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
        return db

    @contextmanager
    def _run_tx(self, run_id: str, write: bool = True, active: bool = True):
        """The run's database, an open transaction and its `_db.RunState`. A write to a run
        Trackio made records it first (adopting its project if need be; see `_native`)."""
        for rescan in (False, True):
            db = self._locate_run(run_id, rescan)
            if not _native.adopted(db):
                if not (write and _native.has_run(db, run_id)):
                    continue
                self._writable(db, self._experiment_of(db))
            with db.write() if write else db.read() as conn:
                state = _db.run_state(conn, run_id)
                if state is None and write and _native.record_run(conn, run_id):
                    state = _db.run_state(conn, run_id)
                if state is None:
                    continue
                if active:
                    _require_active("run", run_id, state.lifecycle_stage)
                yield db, conn, state
                return
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)

    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        db, experiment = self._writable(*self._experiment(experiment_id, write=True))
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
        _check_run_name(run_name)
        if not name_tag:
            tags.append(RunTag(MLFLOW_RUN_NAME, run_name))
        run_id = uuid.uuid4().hex
        row = {
            "run_id": run_id,
            "name": run_name,
            "user_id": user_id,
            "status": RunStatus.to_string(RunStatus.RUNNING),
            "start_time": start_time,
            "artifact_uri": _dashboard.run_artifact_uri(
                experiment.artifact_location, run_id, run_name
            ),
        }
        with db.write() as conn:
            _db.insert_run(conn, row, [(t.key, t.value) for t in tags], _run_owner())
            _dashboard.refresh_config(conn, run_id)
        self._catalog.remember_run(run_id, db.path)
        return self.get_run(run_id)

    def get_run(self, run_id):
        _validate_run_id(run_id)
        for rescan in (False, True):
            db = self._locate_run(run_id, rescan)
            loaded = db.load_runs([run_id]).get(run_id) if _native.adopted(db) else None
            experiment = self._experiment_of(db)
            if loaded is None and experiment is not None:
                loaded = _native.runs(db, experiment, [run_id]).get(run_id)
            if loaded is not None:
                return self._to_run(experiment.experiment_id, loaded)
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)

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
            Metric(m.key, float("nan") if m.is_nan else finite(m.value), m.timestamp, m.step)
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
        _check_run_name(run_name)
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
        ended = run_status is not None and RunStatus.is_terminated(run_status)
        if run_name or ended:  # at the end, also rows a killed rename left under an old name
            _db.rename_run_rows(db, run_id, row.name)
        if ended:
            with self._image_lock:
                self._image_looks.pop(run_id, None)
            _dashboard.wait_for_artifact_writes(run_id)  # end_run returns once images landed
            self._publish_images(db, row)
        return self._to_run(self._experiment_of(db).experiment_id, RunRecord(row)).info

    @staticmethod
    def _publish_images(db: ProjectDB, row: _db.RunRow, only_logged_images: bool = False) -> None:
        """Show a run's images in Trackio's Media view and its `log_table` tables in its table
        view. The artifact files are read before the (short) write transaction, not inside it."""
        rows = _dashboard.image_rows(
            db.path, row.run_id, row.name, row.artifact_uri, only_logged_images
        )
        with db.read() as conn:
            listed = _db.run_tags(conn, row.run_id, [MLFLOW_LOGGED_ARTIFACTS])
        if listed:
            rows += _dashboard.table_rows(
                row.run_id, row.name, row.artifact_uri, listed[MLFLOW_LOGGED_ARTIFACTS]
            )
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
        batch = _checked_batch(metrics, params, tags)
        with self._run_tx(run_id) as (db, conn, state):
            self._write_batches(conn, run_id, state, batch.columns, [batch])
        self._after_write(db, run_id, [batch])

    def log_batch_async(self, run_id, metrics, params, tags):
        """Queue the batch for the store's writer thread (see `_queue`); the returned
        operations settle once it is written, or carry the error that stopped it."""
        return RunOperations([self._queue.append(run_id, metrics, params, tags)])

    def flush_async_logging(self):
        self._queue.flush()

    def end_async_logging(self):
        self._queue.flush()

    def shut_down_async_logging(self):
        self._queue.flush()

    def _write_queued(self, queued: list[QueuedBatch]) -> None:
        """The writer's side of `log_batch_async`: each run's batches in one transaction, as
        consecutive `log_batch` calls would write them. If that fails, each batch is written
        alone, so a bad batch fails only its own caller; failures are logged, as MLflow's
        queue logs them, and raised by the caller's `RunOperations.wait()`."""
        by_run: dict[str, list[QueuedBatch]] = {}
        for item in queued:
            by_run.setdefault(item.run_id, []).append(item)
        for run_id, items in by_run.items():
            for group in [items] if len(items) == 1 else [items, *([i] for i in items)]:
                try:
                    _validate_run_id(run_id)
                    batches = [_checked_batch(i.metrics, i.params, i.tags, False) for i in group]
                    columns = _metrics.metric_columns([m for i in group for m in i.metrics])
                    with _mlflow_errors(), self._run_tx(run_id) as (db, conn, state):
                        self._write_batches(conn, run_id, state, columns, batches)
                    with _mlflow_errors():
                        self._after_write(db, run_id, batches)
                except Exception as e:
                    if group is items and len(items) > 1:
                        continue  # now one at a time
                    _logger.error("Run Id %s: Failed to log run data: Exception: %s", run_id, e)
                    group[0].fail(e)
                else:
                    if group is items:
                        break

    def _write_batches(
        self, conn, run_id: str, state: _db.RunState, columns: tuple, batches: list[_Batch]
    ) -> None:
        """Write checked batches of one run in the caller's transaction: all their metric
        points (`columns`) together, then params and tags in the order they were logged. (A
        new run name reaches the run's metric rows after the transaction: `rename_run_rows`.)"""
        if columns[0]:
            _metrics.log_metrics(conn, run_id, state.name, columns)
            for batch in batches:
                _log_model_metrics(conn, run_id, batch.metrics)
        config_changed = False
        for batch in batches:
            if batch.params:
                self._log_params(conn, run_id, batch.params)
            if batch.tags:
                if batch.new_name:
                    _db.update_run(conn, run_id, name=batch.new_name)
                # Later duplicates of a key win, as in MLflow.
                _db.set_tags(conn, run_id, {t.key: t.value for t in batch.tags}.items())
            config_changed = config_changed or bool(batch.params or batch.tags)
        if config_changed:
            _dashboard.refresh_config(conn, run_id)

    def _after_write(self, db: ProjectDB, run_id: str, batches: list[_Batch]) -> None:
        """What follows a write to a run, outside its transaction: a new name reaches the run's
        metric rows (`rename_run_rows`), and images logged meanwhile show in the Media view."""
        if run_id not in self._image_looks and not any(b.tags for b in batches):
            return  # metrics alone, to a run no image was logged to: nothing follows
        new_names = [b.new_name for b in batches if b.new_name]
        if new_names:
            _db.rename_run_rows(db, run_id, new_names[-1])
        tags = [t for b in batches for t in b.tags]
        if self._images_due(run_id, tags) or any(t.key == MLFLOW_LOGGED_ARTIFACTS for t in tags):
            with db.read() as conn:
                row = _db.run_row(conn, run_id)
            self._publish_images(db, row, True)

    def _images_due(self, run_id: str, tags) -> bool:
        """Whether to look for the run's new `log_image(key=, step=)` images now, so they show
        while the run is live. MLflow tags the run `mlflow.loggedImages` after writing (or, from
        fluent `mlflow.log_image`, after queueing) each image's files: look then, and at the
        run's later batches at most once a second, which finds queued files once they landed.
        (Waiting for MLflow's artifact queue here is no option: it stops and restarts its thread
        per flush and cannot be flushed from two logging threads at once; `end_run` waits.)"""
        now = time.monotonic()
        with self._image_lock:
            last = self._image_looks.get(run_id)
            tagged = any(t.key == MLFLOW_LOGGED_IMAGES for t in tags)
            if tagged or (last is not None and now - last >= IMAGE_LOOK_INTERVAL_S):
                self._image_looks[run_id] = now
                return True
        return False

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
            db = self._trackio_run_db(run_id)
            if db is None:
                return PagedList([], None)  # as MLflow's SQL store answers for an unknown run
        return _metrics.metric_history(db, run_id, metric_key, max_results, page_token)

    def _trackio_run_db(self, run_id: str) -> ProjectDB | None:
        """The file of a run Trackio made and MLflow has not recorded, if there is one."""
        for rescan in (False, True):
            db = self._catalog.locate_run(run_id, rescan)
            if db is not None and _native.has_run(db, run_id):
                return db
        return None

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
        db, _ = self._writable(*self._experiment(experiment_id, write=True))
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
        if "name" in fields:
            _db.rename_run_rows(db, run_id, row.name)
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
        for path, experiment in self._catalog.experiments():
            for run_id, owner_host, pid, started, last_ms in self._catalog.db(path).running_runs():
                if owner_host != host or process_alive(pid, started):
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
        trackio_runs: dict[str, Run] = {}  # runs Trackio made, not recorded by MLflow
        # Their metrics cost a read of all their rows: only for the page, unless searched by.
        by_metrics = any(c[0] == "metric" for c in clauses) or any(o[0] == "metric" for o in orders)
        trackio_experiments: dict[Path, ExperimentRow] = {}
        for experiment_id in dict.fromkeys(str(_parse_experiment_id(e)) for e in experiment_ids):
            located = self._catalog.find_experiment(experiment_id)
            if located is None:
                continue
            db = located[0]
            rows = db.search_runs(stages, clauses, [(kind, key) for kind, key, _ in orders])
            found.extend((row, db, experiment_id) for row in rows)
            trackio_experiments[db.path] = located[1]
            native = [
                self._to_run(experiment_id, record)
                for record in _native.runs(db, located[1], with_metrics=by_metrics).values()
                if record.info.lifecycle_stage in stages
            ]
            # MLflow's own in-memory search semantics (those of its file store) for these.
            for run in SearchUtils.filter(native, filter_string):
                trackio_runs[run.info.run_id] = run
                row = _db.SearchRow(run.info.run_id, run.info.start_time, _order_keys(run, orders))
                found.append((row, db, experiment_id))

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
        trackio_page: dict[Path, list[str]] = {}
        for row, db, _ in page:
            if row.run_id not in trackio_runs:
                by_db.setdefault(db.path, []).append(row.run_id)
            elif not by_metrics:
                trackio_page.setdefault(db.path, []).append(row.run_id)
        loaded = {}
        for path, run_ids in by_db.items():
            loaded.update(self._catalog.db(path).load_runs(run_ids))
        for path, run_ids in trackio_page.items():
            for run_id, record in _native.runs(
                self._catalog.db(path), trackio_experiments[path], run_ids
            ).items():
                trackio_runs[run_id] = self._to_run(trackio_runs[run_id].info.experiment_id, record)
        runs = [
            trackio_runs.get(row.run_id) or self._to_run(experiment_id, loaded[row.run_id])
            for row, _, experiment_id in page
        ]
        return runs, token

    def _search_datasets(self, experiment_ids):
        """The dataset summaries of the experiments (MLflow UI's experiment page): each dataset
        with each context it was used in, at most 1,000, as MLflow's SQL store answers."""
        from mlflow.entities.dataset_summary import _DatasetSummary

        summaries = []
        for experiment_id in dict.fromkeys(str(_parse_experiment_id(e)) for e in experiment_ids):
            located = self._catalog.find_experiment(experiment_id)
            if located is None or located[1].lifecycle_stage != LifecycleStage.ACTIVE:
                continue
            if located[1].native:  # a Trackio project: no datasets
                continue
            with _mlflow_errors(), located[0].read() as conn:
                for name, digest, context in _db.dataset_summaries(conn, 1000 - len(summaries)):
                    summaries.append(_DatasetSummary(experiment_id, name, digest, context))
        return summaries[:1000]

    # --- logged models -------------------------------------------------------------------------

    @contextmanager
    def _model_tx(self, model_id: str, write: bool = True):
        """The logged model's database, an open transaction and its `_db.LoggedModelRow`."""
        for rescan in (False, True):
            db = self._catalog.locate_model(str(model_id), rescan)
            if db is None:
                break
            with db.write() if write else db.read() as conn:
                row = _db.logged_model_row(conn, model_id) if _db.has_logged_models_table(conn) else None
                if row is None:
                    continue
                yield db, conn, row
                return
        raise MlflowException(
            f"Logged model with ID '{model_id}' not found.", RESOURCE_DOES_NOT_EXIST
        )

    @staticmethod
    def _to_logged_model(record: _db.LoggedModelRecord) -> LoggedModel:
        row = record.row
        metrics = [
            Metric(
                m.key, m.value, m.timestamp, m.step, model_id=row.model_id,
                dataset_name=m.dataset_name, dataset_digest=m.dataset_digest, run_id=m.run_id,
            )
            for m in record.metrics
        ]
        return LoggedModel(
            experiment_id=str(row.experiment_id),
            model_id=row.model_id,
            name=row.name,
            artifact_location=row.artifact_location,
            creation_timestamp=row.creation_timestamp_ms,
            last_updated_timestamp=row.last_updated_timestamp_ms,
            model_type=row.model_type,
            source_run_id=row.source_run_id,
            status=LoggedModelStatus.from_int(row.status),
            status_message=row.status_message,
            tags=record.tags or None,
            params=record.params or None,
            metrics=metrics or None,
        )

    def _load_logged_model(self, conn, model_id: str) -> LoggedModel:
        return self._to_logged_model(_db.load_logged_models(conn, [model_id])[model_id])

    def create_logged_model(
        self, experiment_id, name=None, source_run_id=None, tags=None, params=None, model_type=None
    ):
        _validate_logged_model_name(name)
        db, experiment = self._writable(
            *self._experiment(_parse_experiment_id(experiment_id), write=True)
        )
        _require_active("experiment", experiment.experiment_id, experiment.lifecycle_stage)
        # MLflow's id form; the artifacts go under the experiment's artifact location, which for
        # a local store is inside the project's Files view.
        model_id = f"m-{uuid.uuid4().hex}"
        now = get_current_time_millis()
        row = _db.LoggedModelRow(
            model_id=model_id,
            experiment_id=int(experiment.experiment_id),
            name=name or _generate_random_name(),
            artifact_location=append_to_uri_path(
                experiment.artifact_location, _dashboard.MODELS_FOLDER, model_id, _ARTIFACTS_FOLDER
            ),
            creation_timestamp_ms=now,
            last_updated_timestamp_ms=now,
            status=LoggedModelStatus.PENDING.to_int(),
            lifecycle_stage=LifecycleStage.ACTIVE,
            model_type=model_type,
            source_run_id=source_run_id,
            status_message=None,
        )
        params = [(p.key, p.value) for p in params or []]
        _require_unique_model_params(model_id, [key for key, _ in params])
        with db.write() as conn:
            _db.insert_logged_model(conn, row, [(t.key, t.value) for t in tags or []], params)
            model = self._load_logged_model(conn, model_id)
        self._catalog.remember_model(model_id, db.path)
        return model

    def get_logged_model(self, model_id, allow_deleted=False):
        with self._model_tx(model_id, write=False) as (_, conn, row):
            if not allow_deleted and row.lifecycle_stage == LifecycleStage.DELETED:
                raise MlflowException(
                    f"Logged model with ID '{model_id}' not found.", RESOURCE_DOES_NOT_EXIST
                )
            return self._load_logged_model(conn, model_id)

    def finalize_logged_model(self, model_id, status):
        with self._model_tx(model_id) as (_, conn, _):
            _db.update_logged_model(
                conn, model_id, status=status.to_int(),
                last_updated_timestamp_ms=get_current_time_millis(),
            )
            return self._load_logged_model(conn, model_id)

    def delete_logged_model(self, model_id):
        with self._model_tx(model_id) as (_, conn, _):
            _db.update_logged_model(
                conn, model_id, lifecycle_stage=LifecycleStage.DELETED,
                last_updated_timestamp_ms=get_current_time_millis(),
            )

    def set_logged_model_tags(self, model_id, tags):
        with self._model_tx(model_id) as (_, conn, _):
            # A repeated key in one call keeps its last value, as in MLflow.
            _db.set_logged_model_tags(conn, model_id, {t.key: t.value for t in tags}.items())

    def delete_logged_model_tag(self, model_id, key):
        with self._model_tx(model_id) as (_, conn, _):
            if not _db.delete_logged_model_tag(conn, model_id, key):
                raise MlflowException(
                    f"No tag with key {key!r} found for model with ID {model_id!r}.",
                    RESOURCE_DOES_NOT_EXIST,
                )

    def log_logged_model_params(self, model_id, params):
        params = [(p.key, p.value) for p in params]
        with self._model_tx(model_id) as (_, conn, _):
            keys = [key for key, _ in params]
            loaded = _db.load_logged_models(conn, [model_id])[model_id]
            _require_unique_model_params(model_id, keys, existing=loaded.params)
            _db.insert_logged_model_params(conn, model_id, params)

    def record_logged_model(self, run_id, mlflow_model):
        """The run's legacy ``mlflow.log-model.history`` tag, as MLflow's SQL store keeps it."""
        from mlflow.models import Model

        if not isinstance(mlflow_model, Model):
            raise TypeError(
                f"Argument 'mlflow_model' should be mlflow.models.Model, got '{type(mlflow_model)}'"
            )
        model_dict = mlflow_model.get_tags_dict()
        with self._run_tx(run_id) as (_, conn, _):
            previous = _db.run_tags(conn, run_id, [MLFLOW_LOGGED_MODELS]).get(MLFLOW_LOGGED_MODELS)
            value = json.dumps((json.loads(previous) if previous else []) + [model_dict])
            _validate_tag(MLFLOW_LOGGED_MODELS, value)
            _db.set_tags(conn, run_id, [(MLFLOW_LOGGED_MODELS, value)])
            _dashboard.refresh_config(conn, run_id)

    def search_logged_models(
        self, experiment_ids, filter_string=None, datasets=None, max_results=None, order_by=None,
        page_token=None,
    ):
        from mlflow.utils.search_logged_model_utils import EntityType, parse_filter_string
        from mlflow.utils.search_utils import SearchLoggedModelsPaginationToken

        if datasets and not all(d.get("dataset_name") for d in datasets):
            raise MlflowException(
                "`dataset_name` in the `datasets` clause must be specified.",
                INVALID_PARAMETER_VALUE,
            )
        if page_token:
            token = SearchLoggedModelsPaginationToken.decode(page_token)
            token.validate(experiment_ids, filter_string, order_by)
            offset = token.offset
        else:
            offset = 0
        max_results = max_results or SEARCH_LOGGED_MODEL_MAX_RESULTS_DEFAULT
        clauses = []
        for comparison in parse_filter_string(filter_string):
            kind, key = comparison.entity.type, comparison.entity.key
            if kind == EntityType.ATTRIBUTE and key not in _db.LOGGED_MODEL_COLUMNS:
                raise MlflowException.invalid_parameter_value(
                    f"Invalid attribute key '{key}' in filter string: {filter_string!r}."
                )
            clauses.append((kind.value, key, comparison.op, comparison.value))
        dataset_filters = [(d["dataset_name"], d.get("dataset_digest")) for d in datasets or []]
        orders, metric_orders = [], []  # (attribute column or None, ascending, metric index)
        for ob in order_by or []:
            field_name = ob.get("field_name")
            ascending = ob.get("ascending", True)
            if "." not in field_name:
                column = _LOGGED_MODEL_ALIASES.get(field_name, field_name)
                if column not in _db.LOGGED_MODEL_COLUMNS:
                    raise MlflowException.invalid_parameter_value(
                        f"Invalid order by field name: {field_name}",
                        error_class="ATTRIBUTE_NOT_FOUND",
                    )
                orders.append((column, ascending, None))
                continue
            entity, name = field_name.split(".", 1)
            if entity != "metrics":
                raise MlflowException.invalid_parameter_value(
                    f"Invalid order by field name: {field_name}. Only metrics are supported."
                )
            orders.append((None, ascending, len(metric_orders)))
            metric_orders.append((name, ob.get("dataset_name"), ob.get("dataset_digest")))

        found: list[tuple[_db.LoggedModelRow, tuple, ProjectDB]] = []
        for experiment_id in dict.fromkeys(str(_parse_experiment_id(e)) for e in experiment_ids):
            located = self._catalog.find_experiment(experiment_id)
            if located is None:
                continue
            db = located[0]
            with db.read() as conn:
                rows = _db.search_logged_models(conn, clauses, dataset_filters, metric_orders)
            found.extend((row, values, db) for row, values in rows)

        # MLflow's SQL order: each key with missing values last, then creation time descending
        # and model id unless ordered by them. Stable sorts, the last key first.
        columns = [column for column, _, _ in orders]
        if "model_id" not in columns:
            found.sort(key=lambda item: item[0].model_id)
        if "creation_timestamp_ms" not in columns:
            found.sort(key=lambda item: item[0].creation_timestamp_ms, reverse=True)
        for column, ascending, metric in reversed(orders):
            def value(item, column=column, metric=metric):
                return getattr(item[0], column) if metric is None else item[1][metric]

            present = [item for item in found if value(item) is not None]
            missing = [item for item in found if value(item) is None]
            present.sort(key=value, reverse=not ascending)
            found = present + missing

        page = found[offset : offset + max_results]
        token = None
        if len(found) > offset + max_results:
            token = SearchLoggedModelsPaginationToken(
                offset=offset + max_results, experiment_ids=experiment_ids,
                filter_string=filter_string, order_by=order_by,
            ).encode()
        by_db: dict[Path, list[str]] = {}
        for row, _, db in page:
            by_db.setdefault(db.path, []).append(row.model_id)
        loaded = {}
        for path, model_ids in by_db.items():
            with self._catalog.db(path).read() as conn:
                loaded.update(_db.load_logged_models(conn, model_ids))
        return PagedList([self._to_logged_model(loaded[row.model_id]) for row, _, _ in page], token)


class _NumericIdExperiment:
    """Sort view of an experiment (row) whose id compares as the integer it is."""

    def __init__(self, experiment: ExperimentRow):
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


def _experiment_id_or_default(experiment_id) -> str:
    """As MLflow's SQL store reads the id of an experiment it gets or renames: none (None, "")
    is the Default experiment. (Its delete and restore also start so, then fail on the id.)"""
    return _parse_experiment_id(experiment_id or DEFAULT_EXPERIMENT_ID)


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


_LOGGED_MODEL_ALIASES = {
    "creation_time": "creation_timestamp_ms",
    "creation_timestamp": "creation_timestamp_ms",
    "last_updated_timestamp": "last_updated_timestamp_ms",
}


def _require_unique_model_params(model_id: str, keys: list[str], existing=()) -> None:
    """MLflow's SQL store refuses a second value for a logged model's param (BAD_REQUEST)."""
    seen = set(existing)
    for key in keys:
        if key in seen:
            raise MlflowException(
                f"The logged model {model_id} already has a param with key {key!r}.", BAD_REQUEST
            )
        seen.add(key)


class _Batch(NamedTuple):
    metrics: list
    columns: tuple | None  # `_metrics.metric_columns` of the metrics, when asked for
    params: list
    tags: list
    new_name: str | None  # the run's new name, if a tag renames it


def _checked_batch(metrics, params, tags, columns: bool = True) -> _Batch:
    """A batch validated as MLflow validates `log_batch` (nothing is written yet); with
    `columns=False` its metrics are left for the caller to validate (several batches at once)."""
    if len(metrics) + len(params) + len(tags) > MAX_PARAMS_TAGS_PER_BATCH:  # the least limit
        _validate_batch_log_limits(metrics, params, tags)
    metric_columns = _metrics.metric_columns(metrics) if columns else None
    new_name = None
    if params or tags:
        params = [
            _validate_param(p.key, p.value, path=f"params[{i}]") for i, p in enumerate(params)
        ]
        _require_param_values(params)
        tags = [_validate_tag(t.key, t.value, path=f"tags[{i}]") for i, t in enumerate(tags)]
        _validate_param_keys_unique(params)
        new_name = next((t.value for t in reversed(tags) if t.key == MLFLOW_RUN_NAME), None)
        _check_run_name(new_name)
    return _Batch(metrics, metric_columns, params, tags, new_name)


def _log_model_metrics(conn, run_id: str, metrics) -> None:
    """Metrics linked to a logged model are also the model's, stored as MLflow's SQL store
    stores them (NaN as 0, infinities as the largest doubles) in the run's project file."""
    linked = [m for m in metrics if m.model_id is not None]
    if linked:
        _db.insert_logged_model_metrics(
            conn, run_id,
            [
                (m.model_id, m.key, m.timestamp, m.step, clamped(float(m.value)),
                 m.dataset_name, m.dataset_digest)
                for m in linked
            ],
        )


def _require_param_values(params) -> None:
    """A param without a value is bad input (MLflow's SQL store fails on its NOT NULL column)."""
    for param in params:
        if param.value is None:
            raise MlflowException(
                f"Param {param.key!r} has no value (None); log a string, number or boolean.",
                INVALID_PARAMETER_VALUE,
            )
