"""What mytracker relies on in MLflow and Trackio beyond their public APIs, checked by name.

The version matrix (.ci/matrix, docs/compatibility.md) runs this file against the oldest, a middle
and the newest supported MLflow and Trackio: when a release renames one of these, the failure
says which name and where mytracker uses it, instead of a user's run breaking somewhere deep.
"""

import sqlite3
import tomllib
from importlib.metadata import version
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from packaging.requirements import Requirement
from packaging.version import Version

from mytracker._compat import mlflow_version
from mytracker.store._trackio import SUPPORTED_TRACKIO, TRACKIO_SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {r.name: r for r in map(Requirement, project["dependencies"])}


def test_installed_versions_are_the_declared_ones():
    for name in ("mlflow", "trackio"):
        installed = version(name)
        assert _declared()[name].specifier.contains(installed), (
            f"{name} {installed} is outside pyproject.toml's {_declared()[name]}: "
            "the matrix must test exactly the declared range"
        )


def test_refusal_names_the_declared_trackio_range():
    named = Requirement(SUPPORTED_TRACKIO.split(" ")[0])
    assert named.name == "trackio" and named.specifier == _declared()["trackio"].specifier, (
        f"mytracker.store._trackio.SUPPORTED_TRACKIO ({SUPPORTED_TRACKIO!r}) must name the range "
        f"pyproject.toml declares ({_declared()['trackio']})"
    )


def test_installed_trackio_writes_the_schema_the_store_speaks():
    import trackio  # noqa: F401  (Trackio's own writer, in the session's TRACKIO_DIR)
    from trackio.sqlite_storage import SQLiteStorage

    SQLiteStorage.bulk_log("compat-schema", "run", [{"x": 1.0}], run_id="c" * 32)
    path = SQLiteStorage.get_project_db_path("compat-schema")
    written = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert written == TRACKIO_SCHEMA_VERSION, (
        f"Trackio {version('trackio')} writes database schema version {written}; the store "
        f"speaks {TRACKIO_SCHEMA_VERSION} ({SUPPORTED_TRACKIO}): teach mytracker.store._trackio "
        "the new schema before widening the trackio range"
    )


def _project_at_schema(path: Path, schema_version: int) -> None:
    """A project file as another Trackio leaves it: WAL mode, a metrics table, its version."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_name TEXT, metrics TEXT)")
    conn.execute(f"PRAGMA user_version = {schema_version}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("schema_version", "advice"),
    [
        (0, "open it once with that Trackio version"),  # Trackio 0.40 and older record none
        (1, "open it once with that Trackio version"),
        (TRACKIO_SCHEMA_VERSION + 1, "upgrade mytracker to a version that supports it"),
    ],
)
def test_unknown_trackio_schema_is_refused_naming_the_supported_trackio(
    tracking, data_dir, schema_version, advice
):
    client = MlflowClient()
    client.create_experiment("known")
    _project_at_schema(data_dir / "other.db", schema_version)
    before = (data_dir / "other.db").read_bytes()
    with pytest.raises(MlflowException) as refused:
        client.create_experiment("other")
    message = refused.value.message
    assert refused.value.error_code == "INVALID_STATE"
    assert f"other.db has Trackio database schema version {schema_version}" in message
    assert "trackio>=0.41,<0.44 (database schema version 2)" in message and advice in message
    assert (data_dir / "other.db").read_bytes() == before


# --- private MLflow names (grep: `grep -rn "\._\|import _\| _[a-z]" mytracker`) ----------------


def test_metric_keeps_its_fields_in_private_attributes():
    """mytracker/store/_metrics.py `metric_columns` reads them on every batch (with a slower
    fallback to the properties)."""
    metric = Metric("loss", 0.5, 1_700_000_000_000, 3)
    fields = {name: getattr(metric, name, "missing") for name in ("_key", "_value", "_timestamp", "_step")}
    assert fields == {"_key": "loss", "_value": 0.5, "_timestamp": 1_700_000_000_000, "_step": 3}, (
        f"mlflow.entities.Metric no longer keeps key/value/timestamp/step in _key/_value/"
        f"_timestamp/_step (MLflow {mlflow.__version__}): update _metrics.metric_columns"
    )


def test_tracking_store_registry_and_tracking_uri(store_uri):
    """mytracker/_autolog.py and _sdk.py register the scheme and read the URI set by
    set_tracking_uri; mytracker/_copy.py `_get_store` builds stores through the registry."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from mytracker.store import build_store
    from mytracker.store._store import TrackioStore

    registry = getattr(tracking_utils, "_tracking_store_registry", None)
    assert registry is not None and hasattr(registry, "register"), (
        "mlflow.tracking._tracking_service.utils._tracking_store_registry is gone: "
        "update mytracker._autolog, mytracker._sdk and mytracker._copy"
    )
    registry.register("trackio", build_store)
    assert isinstance(registry.get_store(store_uri, None), TrackioStore)
    try:
        mlflow.set_tracking_uri(store_uri)
        assert getattr(tracking_utils, "_tracking_uri", "missing") == store_uri, (
            "mlflow.tracking._tracking_service.utils._tracking_uri no longer holds the URI "
            "set_tracking_uri sets: update mytracker._autolog (save/restore of the URI)"
        )
    finally:
        mlflow.set_tracking_uri(None)
    assert tracking_utils._tracking_uri is None


def test_run_data_keeps_metric_entities(tracking):
    """mytracker/_copy.py `_latest` copies each run's latest metrics from run.data._metric_objs
    (RunData.metrics keeps only the values, not their timestamps and steps)."""
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.25, step=7, timestamp=1_700_000_000_123)
    data = mlflow.get_run(run.info.run_id).data
    objs = getattr(data, "_metric_objs", None)
    assert objs is not None, "RunData._metric_objs is gone: update mytracker._copy._latest"
    assert [(m.key, m.value, m.timestamp, m.step) for m in objs] == [
        ("loss", 0.25, 1_700_000_000_123, 7)
    ]


def test_validation_helpers_and_name_generator():
    """mytracker/store/_store.py validates input with MLflow's own private helpers (so errors
    match MLflow's) and names runs with MLflow's generator."""
    import mlflow.utils.validation as validation
    from mlflow.utils import name_utils

    used = [
        "_validate_batch_log_limits", "_validate_dataset_inputs",
        "_validate_experiment_artifact_location_length", "_validate_experiment_name",
        "_validate_experiment_tag", "_validate_metric", "_validate_param",
        "_validate_param_keys_unique", "_validate_run_id", "_validate_tag",
    ]
    missing = [name for name in used if not callable(getattr(validation, name, None))]
    assert not missing, f"mlflow.utils.validation lost {missing}: update mytracker/store/_store.py"
    with pytest.raises(MlflowException) as bad:
        validation._validate_run_id("not a run id")
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    assert isinstance(name_utils._generate_random_name(), str)


def test_abstract_store_hooks_the_store_overrides():
    """TrackioStore implements `_search_runs`, which AbstractStore.search_runs calls, and
    `_search_datasets`, which MLflow's server looks for by name."""
    import inspect

    from mlflow.server import handlers
    from mlflow.store.tracking.abstract_store import AbstractStore

    assert "self._search_runs(" in inspect.getsource(AbstractStore.search_runs), (
        "AbstractStore.search_runs no longer calls self._search_runs: update TrackioStore"
    )
    assert "store._search_datasets(" in inspect.getsource(handlers), (
        "MLflow's server no longer calls store._search_datasets: update TrackioStore"
    )


def test_autologging_internals():
    """mytracker/_autolog.py marks Lightning's late patch as globally configured (so
    `mlflow.autolog(disable=True)` reverts it) and filters the autologging logger by name."""
    from mlflow.utils import autologging_utils

    assert isinstance(getattr(autologging_utils, "AUTOLOGGING_INTEGRATIONS", None), dict)
    assert isinstance(getattr(autologging_utils, "AUTOLOGGING_CONF_KEY_IS_GLOBALLY_CONFIGURED", None), str)
    assert autologging_utils._logger.name == "mlflow.utils.autologging_utils", (
        "MLflow's autologging logger was renamed: update mytracker._autolog._AUTOLOG_LOGGER"
    )
    assert "exclude_flavors" in __import__("inspect").signature(mlflow.autolog).parameters


def test_sql_store_sessions_as_mytracker_opens_them(tmp_path):
    """mytracker/_compat.py `sql_write_session`: MLflow 3.13 added read_only= to the SQL
    store's sessions (mytracker copy writes MLflow SQLite stores through them)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import text

    from mytracker._compat import sql_write_session

    store = SqlAlchemyStore(f"sqlite:///{tmp_path}/m.db", str(tmp_path / "a"))
    with sql_write_session(store) as session:
        session.execute(text("CREATE TABLE probe (x INTEGER)"))
        session.execute(text("INSERT INTO probe VALUES (1)"))
    with store.ManagedSessionMaker() as session:
        assert session.execute(text("SELECT x FROM probe")).all() == [(1,)]
    store.engine.dispose()
    assert mlflow_version() == Version(mlflow.__version__).release[:2]


def test_spark_session_lookup_for_the_registry_uri():
    """mytracker/store/_fluent.py `_skip_spark_lookup_without_pyspark` wraps the name MLflow's
    registry-URI resolution calls on every `MlflowClient()`."""
    from mlflow.tracking._model_registry import utils as registry_utils

    assert callable(getattr(registry_utils, "_get_active_spark_session", None)), (
        "mlflow.tracking._model_registry.utils._get_active_spark_session is gone: update "
        "_skip_spark_lookup_without_pyspark in mytracker/store/_fluent.py"
    )
    lookup = registry_utils._get_registry_uri_from_spark_session
    assert "_get_active_spark_session" in lookup.__code__.co_names


def test_what_a_client_built_without_arguments_depends_on():
    """mytracker/store/_fluent.py `_reuse_fluent_clients` reuses the fluent API's client while
    the settings it compares are unchanged: MLflow's resolution of the three URIs a client is
    built from must read nothing else."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.utils import workspace_utils

    reads = {
        MlflowClient.__init__: {"_resolve_tracking_uri", "_resolve_registry_uri",
                                "resolve_workspace_store_uri", "TrackingServiceClient",
                                "TracingClient", "utils", "registry_utils", "workspace_utils",
                                "_registry_uri", "_tracking_client", "_workspace_store_uri",
                                "_tracing_client", "_workspace_client"},
        registry_utils._resolve_registry_uri: {"_get_registry_uri_from_context",
                                               "_get_default_registry_uri_for_tracking_uri",
                                               "_resolve_tracking_uri"},
        registry_utils._get_registry_uri_from_context: {"_registry_uri", "MLFLOW_REGISTRY_URI",
                                                        "get", "_get_registry_uri_from_spark_session"},
        workspace_utils.resolve_workspace_store_uri: {"get_workspace_store_uri",
                                                      "_resolve_tracking_uri", "utils",
                                                      "mlflow.tracking._tracking_service"},
        workspace_utils.get_workspace_store_uri: {"_workspace_store_uri",
                                                  "MLFLOW_WORKSPACE_STORE_URI", "get"},
    }
    for function, names in reads.items():
        assert set(function.__code__.co_names) <= names, (
            f"{function.__qualname__} now reads {set(function.__code__.co_names) - names}: "
            "update _reuse_fluent_clients in mytracker/store/_fluent.py"
        )
    assert hasattr(registry_utils, "_registry_uri") and hasattr(workspace_utils, "_workspace_store_uri")
