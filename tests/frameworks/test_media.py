"""Images MLflow logs (autolog plots, mlflow.log_image, mlflow.log_figure) in Trackio's dashboard:
every artifact in the Files view, every image in the Media view.

`mytracker.store._dashboard` holds the two pieces; until the store calls them itself (a proposed
one-line change each), these tests place the experiment and publish the run the way it will.
"""

import sqlite3
from pathlib import Path
from urllib.parse import quote

import matplotlib
import mlflow
import numpy as np
from framework_helpers import artifact_files
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from mytracker.store import _dashboard

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PNG_MAGIC = b"\x89PNG"


def train_and_draw():
    """An autologged fit (confusion matrix, ROC curve) plus images a user logs by hand."""
    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    LogisticRegression(max_iter=200).fit(X, y)
    image = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    mlflow.log_image(image, "sample.png")
    for step in (0, 1):
        mlflow.log_image(image, key="inputs/batch", step=step)
    figure, axes = plt.subplots()
    axes.plot([3, 2, 1])
    mlflow.log_figure(figure, "plots/loss_curve.png")
    plt.close(figure)
    # log_image(key=, step=) writes its files on a background thread that end_run does not wait
    # for; flush so they exist when the run ends (and the Media view is published).
    mlflow.flush_artifact_async_logging()


def publish(project_path, run):
    """What the store does when a run ends (see _dashboard.publish_run_images)."""
    with sqlite3.connect(project_path) as conn:
        return _dashboard.publish_run_images(
            conn, project_path, run.info.run_id, run.info.run_name, run.info.artifact_uri
        )


def media_of(dashboard, project, run):
    rows = dashboard.post(
        "/api/get_logs",
        json={"project": project, "run": run.info.run_name, "run_id": run.info.run_id},
    ).json()["data"]
    return {
        (key, row["step"]): value
        for row in rows
        for key, value in row.items()
        if isinstance(value, dict) and value.get("_type") == "trackio.image"
    }


def fetch(dashboard, absolute_path):
    return dashboard.get(f"/file?path={quote(str(absolute_path))}")


def test_artifacts_in_files_view_and_images_in_media_view(
    autologged, trackio_home, dashboard
):
    project = f"{autologged}-media"
    project_path = Path(trackio_home) / f"{project}.db"
    location = _dashboard.default_artifact_location(project_path)
    assert location.endswith(f"/trackio/media/{project}/files/mlflow")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(project, location))
    with mlflow.start_run() as active:
        train_and_draw()
    run = mlflow.get_run(active.info.run_id)
    assert project_path.exists()
    assert {"estimator.html", "training_confusion_matrix.png", "plots/loss_curve.png"} <= (
        artifact_files(run)
    )

    # Files view: every artifact, served by the dashboard.
    tabs = dashboard.post("/api/get_tab_availability", json={"project": project}).json()["data"]
    assert tabs["files"]
    files = dashboard.post("/api/get_project_files", json={"project": project}).json()["data"]
    prefix = f"mlflow/{run.info.run_name}/"  # listed under the run's name
    listed = {f["name"][len(prefix):]: f["path"] for f in files if f["name"].startswith(prefix)}
    assert set(listed) == artifact_files(run)
    assert fetch(dashboard, listed["training_confusion_matrix.png"]).content[:4] == PNG_MAGIC
    assert b"LogisticRegression" in fetch(dashboard, listed["estimator.html"]).content

    # Media view: each image once, log_image series under their key and step.
    publish(project_path, run)  # a no-op once the store does it itself at the end of a run
    assert publish(project_path, run) == 0  # idempotent
    tabs = dashboard.post("/api/get_tab_availability", json={"project": project}).json()["data"]
    assert tabs["media"]
    media = media_of(dashboard, project, run)
    assert set(media) == {
        ("training_confusion_matrix.png", 0), ("training_roc_curve.png", 0),
        ("training_precision_recall_curve.png", 0), ("sample.png", 0),
        ("plots/loss_curve.png", 0), ("inputs/batch", 0), ("inputs/batch", 1),
    }
    media_dir = dashboard.post("/api/get_settings", json={}).json()["data"]["media_dir"]
    for value in media.values():
        assert fetch(dashboard, Path(media_dir) / value["file_path"]).content[:4] == PNG_MAGIC

    # The run still reads back as MLflow wrote it.
    again = mlflow.get_run(run.info.run_id)
    assert again.data.metrics == run.data.metrics
    assert MlflowClient().get_metric_history(run.info.run_id, "training_accuracy_score")


def test_images_outside_media_dir_are_copied_in(experiment, trackio_home, tmp_path, dashboard):
    name = f"{experiment}-custom"
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        name, artifact_location=(tmp_path / "elsewhere").as_uri()
    ))
    with mlflow.start_run() as active:
        mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), "blank.png")
    run = mlflow.get_run(active.info.run_id)
    assert str(tmp_path) in run.info.artifact_uri

    publish(Path(trackio_home) / f"{name}.db", run)
    [(key, value)] = [(k, v) for (k, _), v in media_of(dashboard, name, run).items()]
    assert key == "blank.png"
    assert value["file_path"].startswith(f"{name}/mlflow/{run.info.run_id}/")
    media_dir = dashboard.post("/api/get_settings", json={}).json()["data"]["media_dir"]
    assert fetch(dashboard, Path(media_dir) / value["file_path"]).content[:4] == PNG_MAGIC


def test_store_shows_images_by_default(autologged, dashboard):
    with mlflow.start_run() as active:
        train_and_draw()
    run = mlflow.get_run(active.info.run_id)
    assert "/media/" in run.info.artifact_uri  # where Trackio's Files view looks
    files = dashboard.post("/api/get_project_files", json={"project": autologged}).json()["data"]
    assert f"mlflow/{run.info.run_name}/estimator.html" in {f["name"] for f in files}
    media = media_of(dashboard, autologged, run)
    assert {("training_confusion_matrix.png", 0), ("inputs/batch", 1)} <= set(media)
