"""Shared test set-up: every test runs against real MLflow and real Trackio files.

Trackio reads ``TRACKIO_DIR`` once, at import, so the session's Trackio home is fixed here,
before anything imports trackio; tests that look at data through Trackio's own reader or
dashboard write into that directory (``trackio_home``) under unique experiment names.
"""

import os
import tempfile
import uuid

_HOME = tempfile.mkdtemp(prefix="mytracker-tests-")
os.environ["TRACKIO_DIR"] = os.path.join(_HOME, "trackio")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("TRACKIO_BUCKET_ID", None)
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

import mlflow  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def data_dir(tmp_path):
    """A fresh Trackio data directory."""
    return tmp_path / "trackio-data"


@pytest.fixture
def store_uri(data_dir):
    return f"trackio://{data_dir}"


@pytest.fixture
def trackio_home():
    """Trackio's own data directory for this session (what `trackio show` would read)."""
    return os.environ["TRACKIO_DIR"]


@pytest.fixture
def unique_name():
    return f"exp-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tracking(store_uri):
    """Point MLflow at a fresh trackio:// store for one test, and put it back afterwards."""
    mlflow.set_tracking_uri(store_uri)
    yield store_uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def mlflow_warnings():
    """What MLflow logs at WARNING or above during the test, as "logger: message" lines. MLflow's
    logger has its own handler and does not propagate, so pytest's caplog never sees it."""
    import logging

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(f"{record.name}: {record.getMessage()}")

    handler = Collect(logging.WARNING)
    logging.getLogger("mlflow").addHandler(handler)
    yield messages
    logging.getLogger("mlflow").removeHandler(handler)


@pytest.fixture(autouse=True)
def fresh_mlflow_state():
    """After every test, undo what `mytracker.autolog()`/`mytracker.init()` leave in MLflow's
    process-wide state: autologging, active runs, the tracking URI and the active experiment."""
    yield
    import warnings

    import mlflow.tracking.fluent

    import mytracker

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not enabled" is expected after a clean test
        mytracker.autolog(disable=True)
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
