"""What a person sees in Trackio's dashboard of what MLflow logged (issue #16), asked through the
dashboard's own JSON API (`trackio.server.build_starlette_app_only()`, the app `trackio show`
serves) and through `mytracker show`. The same in a real browser: test_browser.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import mytracker
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from mytracker.cli._common import UsageError
from mytracker.cli._server import project_to_open
from mytracker.store._store import IMAGE_LOOK_INTERVAL_S


@pytest.fixture
def dashboard():
    from starlette.testclient import TestClient
    from trackio.server import build_starlette_app_only

    app, _ = build_starlette_app_only()
    with TestClient(app) as client:
        yield lambda name, **body: client.post(f"/api/{name}", json=body).json()["data"]


@pytest.fixture
def home_tracking(trackio_home):
    """MLflow logging into the directory the dashboard app reads."""
    mlflow.set_tracking_uri(f"trackio://{trackio_home}")
    yield Path(trackio_home)
    mlflow.set_tracking_uri(None)


def summary(dashboard, project, run):
    return dashboard("get_run_summary", project=project, run=run.info.run_name,
                     run_id=run.info.run_id)


def images(dashboard, project, run):
    rows = dashboard("get_logs", project=project, run=run.info.run_name, run_id=run.info.run_id)
    return {(key, row["step"]): value["caption"] for row in rows for key, value in row.items()
            if isinstance(value, dict) and value.get("_type") == "trackio.image"}


def test_the_default_experiment_has_no_file_until_a_run_is_logged_in_it(store_uri, data_dir):
    client = MlflowClient(store_uri)
    default = client.get_experiment("0")
    assert default.name == "Default" and default.lifecycle_stage == "active"
    assert client.get_experiment_by_name("Default").experiment_id == "0"
    assert [e.name for e in client.search_experiments()] == ["Default"]
    client.create_experiment("later")
    assert [e.name for e in client.search_experiments()] == ["later", "Default"]  # newest first
    assert sorted(p.name for p in data_dir.glob("*.db")) == ["later.db"]  # no empty Default

    mlflow.set_tracking_uri(store_uri)
    with mlflow.start_run() as run:  # no experiment set: MLflow's experiment "0"
        mlflow.log_metric("loss", 0.5)
    assert run.info.experiment_id == "0"
    assert sorted(p.name for p in data_dir.glob("*.db")) == ["Default.db", "later.db"]
    assert client.get_experiment("0").creation_time == default.creation_time
    assert [e.name for e in client.search_experiments()] == ["later", "Default"]


def test_show_opens_the_project_written_last_and_takes_experiment_names(store_uri, data_dir):
    mlflow.set_tracking_uri(store_uri)
    for name in ("zeta", "my experiment", "team/vision", "zeta"):
        mlflow.set_experiment(name)
        with mlflow.start_run():
            mlflow.log_metric("m", 1.0)
    assert project_to_open(data_dir, None) == "zeta"  # written last, though not first in a-z
    mlflow.set_experiment("my experiment")
    with mlflow.start_run():
        mlflow.log_metric("m", 2.0)
    assert project_to_open(data_dir, None) == "myexperiment"
    assert project_to_open(data_dir, "my experiment") == "myexperiment"
    assert project_to_open(data_dir, "team/vision") == "teamvision"
    MlflowClient().create_experiment("myexperiment")  # its name reduces to a taken file name
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("myexperiment").experiment_id):
        mlflow.log_metric("m", 3.0)
    assert project_to_open(data_dir, "myexperiment") == "myexperiment-2"
    with pytest.raises(UsageError, match="has no runs yet"):
        project_to_open(data_dir, "Default")

    result = subprocess.run(
        [sys.executable, "-m", "mytracker.cli", "show", "--dir", str(data_dir), "--project",
         "my exp"], capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"mytracker show: error: no experiment named 'my exp' in {data_dir}; experiments: "
        "'Default', 'my experiment', 'myexperiment', 'team/vision', 'zeta'"
    )


def test_autolog_runs_as_the_dashboard_shows_them(home_tracking, unique_name, dashboard):
    mlflow.set_experiment(f"{unique_name} sklearn")
    project = f"{unique_name}sklearn"
    mytracker.autolog()  # MLflow's autolog, models not logged
    try:
        X, y = make_classification(n_samples=80, n_features=4, random_state=0)
        with mlflow.start_run(run_name="single-step") as single:
            mlflow.log_metrics({"loss": 0.25, "accuracy": 0.75}, step=0)
        with mlflow.start_run(run_name="search") as parent:
            GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
    finally:
        mytracker.autolog(disable=True)

    # Steps: no placeholder row left once real metrics arrived.
    got = summary(dashboard, project, single)
    assert (got["num_logs"], got["last_step"], got["metrics"]) == (1, 0, ["accuracy", "loss"])
    records = {r["name"]: r for r in dashboard("get_runs_for_project", project=project)}
    children = [r for r in MlflowClient().search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")]
    assert len(children) == 2
    assert set(records) == {"single-step", "search"} | {c.info.run_name for c in children}

    # Nested runs carry their parent's name as the group Trackio offers under "Group by".
    configs = dashboard("get_run_configs", project=project)
    assert {configs[c.info.run_id]["_Group"] for c in children} == {"search"}
    assert configs[parent.info.run_id]["_Group"] == "search"  # the parent is in its group
    assert configs[single.info.run_id]["_Group"] is None

    # Autolog plots: in the Media view, captioned with their file name; listed by run name in
    # the Files view.
    assert images(dashboard, project, parent)[("training_confusion_matrix.png", 0)] == (
        "training_confusion_matrix.png"
    )
    files = {f["name"] for f in dashboard("get_project_files", project=project)}
    assert {"mlflow/search/training_confusion_matrix.png", "mlflow/search/estimator.html"} <= files
    assert not any(parent.info.run_id in name for name in files)

    # A run deleted in MLflow says so in Trackio (which cannot hide it); restoring undoes it.
    client = MlflowClient()
    client.delete_run(single.info.run_id)
    names = {r["id"]: r["name"] for r in dashboard("get_runs_for_project", project=project)}
    assert names[single.info.run_id] == "single-step (deleted)"
    assert client.get_run(single.info.run_id).info.run_name == "single-step"
    client.restore_run(single.info.run_id)
    names = {r["id"]: r["name"] for r in dashboard("get_runs_for_project", project=project)}
    assert names[single.info.run_id] == "single-step"


def test_a_scikit_learn_fit_is_one_step_in_trackio(home_tracking, unique_name, dashboard):
    """sklearn's autolog logs its step-0 training metrics at several times (separate calls):
    Trackio shows one row, so its Runs table says Steps 1, Last Step 0 (the table shows
    `get_run_summary`'s num_logs and last_step); MLflow keeps each point's own time."""
    mlflow.set_experiment(unique_name)
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    mytracker.autolog()
    try:
        model = LogisticRegression().fit(X, y)
    finally:
        mytracker.autolog(disable=True)
    run = MlflowClient(f"trackio://{home_tracking}").get_run(mlflow.last_active_run().info.run_id)

    got = summary(dashboard, unique_name, run)
    assert (got["num_logs"], got["last_step"]) == (1, 0)
    assert {"training_score", "training_accuracy_score", "training_roc_auc"} <= set(got["metrics"])
    (row,) = dashboard("get_logs", project=unique_name, run=run.info.run_name,
                       run_id=run.info.run_id)
    assert row["training_score"] == model.score(X, y)

    client = MlflowClient(f"trackio://{home_tracking}")
    history = {key: client.get_metric_history(run.info.run_id, key) for key in run.data.metrics}
    assert all([m.step for m in points] == [0] for points in history.values())
    times = {key: points[0].timestamp for key, points in history.items()}
    assert len(set(times.values())) > 1  # logged at several times, each point keeps its own
    assert times == {m.key: m.timestamp for m in run.data._metric_objs}
    assert history["training_score"][0].value == model.score(X, y)


def test_logged_images_show_while_the_run_is_live(home_tracking, unique_name, dashboard):
    mlflow.set_experiment(unique_name)
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    with mlflow.start_run(run_name="live") as run:
        for step in range(3):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
            mlflow.log_image(image, key="samples/grid", step=step)  # queued on MLflow's thread
        mlflow.flush_artifact_async_logging()  # the files have landed...
        time.sleep(IMAGE_LOOK_INTERVAL_S)
        mlflow.log_metric("loss", 0.2, step=3)  # ...and the run's next batch finds them
        mlflow.flush_async_logging()
        assert images(dashboard, unique_name, run) == {
            ("samples/grid", step): f"samples/grid (step {step})" for step in range(3)
        }
        mlflow.log_image(image, key="samples/grid", step=3)
    # end_run returned: MLflow's queued image writes have landed and are shown.
    assert images(dashboard, unique_name, run) == {
        ("samples/grid", step): f"samples/grid (step {step})" for step in range(4)
    }
    got = summary(dashboard, unique_name, run)
    assert (got["num_logs"], got["last_step"]) == (4, 3)  # each image joined its step's row


TRACKIO_IMAGE_RUN = """
import numpy as np, trackio
trackio.init(project={project!r}, name="trackio-own")
trackio.log({{"loss": 0.5, "samples": trackio.Image(np.zeros((8, 8, 3), np.uint8), caption="c")}})
trackio.finish()
"""


def test_images_are_stored_as_trackio_stores_its_own(home_tracking, unique_name, dashboard):
    """An MLflow image row has the shape of the row `trackio.log({"samples": trackio.Image(..)})`
    writes, and Trackio lists both keys among the run's metrics (its `get_run_summary` lists
    every key of a run's rows): the dashboard treats them alike."""
    subprocess.run(
        [sys.executable, "-c", TRACKIO_IMAGE_RUN.format(project=unique_name)], check=True,
        env={**os.environ, "TRACKIO_DIR": str(home_tracking)}, capture_output=True, timeout=120,
    )
    mlflow.set_experiment(unique_name)  # Trackio's project, now an MLflow experiment too
    with mlflow.start_run(run_name="mlflow-run") as run:
        mlflow.log_metric("loss", 0.5, step=0)
        mlflow.log_image(np.zeros((8, 8, 3), np.uint8), key="samples", step=0)
    shapes = {}
    for record in dashboard("get_runs_for_project", project=unique_name):
        (row,) = dashboard("get_logs", project=unique_name, run=record["name"],
                           run_id=record["id"])
        shapes[record["name"]] = sorted(row["samples"])
        got = dashboard("get_run_summary", project=unique_name, run=record["name"],
                        run_id=record["id"])
        assert got["metrics"] == ["loss", "samples"], record
    assert shapes == {name: ["_type", "caption", "file_path"]
                      for name in ("trackio-own", run.info.run_name)}


@pytest.mark.heavy
def test_images_logged_through_mytracker_server_show_in_media(trackio_home, unique_name,
                                                              dashboard, tmp_path):
    from servers import mytracker_server

    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with mytracker_server(Path(trackio_home), workers=1, log_path=tmp_path / "server.log") as url:
        mlflow.set_tracking_uri(url)
        try:
            mlflow.set_experiment(unique_name)
            with mlflow.start_run(run_name="remote") as run:
                for step in range(2):
                    mlflow.log_image(image, key="samples", step=step, synchronous=True)
                live = images(dashboard, unique_name, run)
                mlflow.log_image(image, "final.png")
        finally:
            mlflow.set_tracking_uri(None)
    assert live == {("samples", 0): "samples (step 0)", ("samples", 1): "samples (step 1)"}
    assert images(dashboard, unique_name, run) == {**live, ("final.png", 0): "final.png"}


def test_a_first_point_at_the_run_start_time_is_kept(store_uri):
    """The empty row that shows a new run is at step 0 and the run's start time; a first point
    there fills that row, which then stays (only an empty placeholder goes)."""
    from mlflow.entities import Metric

    client = MlflowClient(store_uri)
    run = client.create_run(client.create_experiment("start"), start_time=1_700_000_000_000)
    client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0, 1_700_000_000_000, 0)])
    client.log_batch(run.info.run_id, metrics=[Metric("loss", 0.5, 1_700_000_000_010, 1)])
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]


def test_renaming_the_default_experiment_before_its_first_run(store_uri, data_dir):
    client = MlflowClient(store_uri)
    client.rename_experiment("0", "renamed default")
    assert client.get_experiment("0").name == "renamed default"
    assert client.get_experiment_by_name("Default") is None
    assert [p.name for p in data_dir.glob("*.db")] == ["Default.db"]  # a rename keeps the file


def test_logged_model_files_are_listed_in_the_files_view(home_tracking, unique_name, dashboard):
    """`mlflow.sklearn.log_model` writes the model where Trackio's Files view looks: a person
    finds MLmodel and the weights under `mlflow/models/<model id>/` (MLflow's own layout inside
    the experiment's folder; beside the runs' `mlflow/<run name>/` folders)."""
    mlflow.set_experiment(unique_name)
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    with mlflow.start_run(run_name="fit") as run:
        info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="clf",
                                        pip_requirements=["scikit-learn"])
    project = mlflow.get_experiment(run.info.experiment_id).name.replace(" ", "")
    files = {f["name"] for f in dashboard("get_project_files", project=project)}
    folder = f"mlflow/models/{info.model_id}/artifacts"
    # The model's own files, as MLflow lists them (the weights' format depends on MLflow's
    # version: model.pkl, or model.skops from 3.17 on)
    logged = {f"{folder}/{a.path}" for a in MlflowClient().list_logged_model_artifacts(info.model_id)}
    assert {f"{folder}/MLmodel", f"{folder}/requirements.txt"} < logged <= files, files


def test_logged_tables_show_in_trackios_table_view(home_tracking, unique_name, dashboard):
    """`mlflow.log_table` reaches Trackio's table view as its own `trackio.Table` would: a list
    of row dicts under the table's path, in the step's row while the run is live (Steps stays
    1); the table appended to later shows whole after the run, once."""
    mlflow.set_experiment(unique_name)
    with mlflow.start_run(run_name="eval") as run:
        mlflow.log_metric("accuracy", 0.75, step=0)
        mlflow.log_table({"question": ["2+2?", "capital?"], "score": [1.0, 0.5]},
                         artifact_file="eval/answers.json")
        (row,) = dashboard("get_logs", project=unique_name, run="eval", run_id=run.info.run_id)
        table = row["eval/answers"]
        assert table["_type"] == "trackio.table"
        assert table["_value"] == [{"question": "2+2?", "score": 1.0},
                                   {"question": "capital?", "score": 0.5}]
        assert row["accuracy"] == 0.75
        mlflow.log_table({"question": ["3*3?"], "score": [0.0]}, artifact_file="eval/answers.json")
    rows = dashboard("get_logs", project=unique_name, run="eval", run_id=run.info.run_id)
    shown = [r["eval/answers"]["_value"] for r in rows if "eval/answers" in r]
    assert [len(t) for t in shown] == [2, 3]  # each version once, the last one whole
    assert shown[-1][-1] == {"question": "3*3?", "score": 0.0}
    # MLflow reads its own table back unchanged
    assert mlflow.load_table("eval/answers.json", run_ids=[run.info.run_id])["score"].tolist() == [
        1.0, 0.5, 0.0
    ]


def test_a_parquet_table_shows_in_trackios_table_view(home_tracking, unique_name, dashboard):
    mlflow.set_experiment(unique_name)
    with mlflow.start_run(run_name="eval") as run:
        mlflow.log_table({"question": ["2+2?", "capital?"], "score": [1.0, 0.5], "n": [1, 2]},
                         artifact_file="eval/answers.parquet")
        rows = dashboard("get_logs", project=unique_name, run="eval", run_id=run.info.run_id)
    (table,) = [r["eval/answers"] for r in rows if "eval/answers" in r]  # at once, as JSON's
    assert table["_type"] == "trackio.table"
    assert table["_value"] == [{"question": "2+2?", "score": 1.0, "n": 1},
                               {"question": "capital?", "score": 0.5, "n": 2}]
