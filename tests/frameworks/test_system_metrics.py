"""MLflow's system metrics (`log_system_metrics=True`) land in Trackio's System view, apart from
the training metrics."""

import re
import time
import tomllib
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier
from trackio.sqlite_storage import SQLiteStorage


@pytest.fixture
def fast_sampling():
    mlflow.set_system_metrics_sampling_interval(0.2)
    mlflow.set_system_metrics_samples_before_logging(1)
    yield
    mlflow.set_system_metrics_sampling_interval(None)
    mlflow.set_system_metrics_samples_before_logging(None)


def test_system_metrics_go_to_trackio_system_view(experiment, fast_sampling, dashboard):
    X, y = make_classification(n_samples=500, n_features=10, random_state=0)
    model = SGDClassifier(random_state=0)
    with mlflow.start_run(log_system_metrics=True) as active:
        deadline = time.monotonic() + 1.5
        epoch = 0
        while time.monotonic() < deadline:  # train long enough for several samples
            model.partial_fit(X, y, classes=[0, 1])
            mlflow.log_metric("train_accuracy", model.score(X, y), step=epoch)
            epoch += 1
            time.sleep(0.05)

    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    system_keys = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= (
        system_keys
    )
    cpu_history = MlflowClient().get_metric_history(
        run.info.run_id, "system/cpu_utilization_percentage"
    )
    cpu_steps = [m.step for m in cpu_history]
    assert len(cpu_steps) >= 3 and cpu_steps == list(range(len(cpu_steps)))

    # Trackio: system series in the System view (without the prefix), keeping MLflow's step ...
    name, run_id = run.info.run_name, run.info.run_id
    system_rows = SQLiteStorage.get_system_logs(experiment, name, run_id=run_id)
    assert [row["step"] for row in system_rows if "cpu_utilization_percentage" in row] == cpu_steps
    assert all(0 <= row["system_memory_usage_percentage"] <= 100 for row in system_rows)
    # ... and none of them among the training metrics.
    training_rows = SQLiteStorage.get_logs(experiment, name, run_id=run_id)
    training_keys = set().union(*training_rows) - {"step", "timestamp"}
    assert training_keys == {"train_accuracy"}
    assert [row["step"] for row in training_rows if "train_accuracy" in row] == list(range(epoch))

    tabs = dashboard.post("/api/get_tab_availability", json={"project": experiment}).json()["data"]
    assert tabs["system"] and tabs["metrics"]
    shown = dashboard.post(
        "/api/get_system_logs", json={"project": experiment, "run": name, "run_id": run_id}
    ).json()["data"]
    assert len(shown) == len(system_rows)


def test_psutil_comes_with_mytracker():
    """MLflow's system metrics need psutil, which neither MLflow nor Trackio installs: without it
    `start_run(log_system_metrics=True)` raises and leaves a RUNNING run. mytracker declares it."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert any(re.match(r"psutil\b", dep) for dep in pyproject["project"]["dependencies"])
