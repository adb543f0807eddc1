"""MLflow's fluent API on ``trackio://``: what mytracker cuts from its per-call work
(mytracker/store/_fluent.py) changes no answer."""

import os

import mlflow
from mlflow import MlflowClient
from mlflow.tracking import fluent
from mlflow.utils import workspace_utils


def _uris(client) -> tuple:
    return client.tracking_uri, client._registry_uri, client._workspace_store_uri


def test_fluent_calls_reuse_one_client_and_follow_every_setting(tmp_path, monkeypatch):
    first, second = f"trackio://{tmp_path / 'a'}", f"trackio://{tmp_path / 'b'}"
    mlflow.set_tracking_uri(first)
    mlflow.set_experiment("e")
    with mlflow.start_run():
        mlflow.log_metrics({"loss": 1.0}, step=0)
    assert fluent.MlflowClient() is fluent.MlflowClient()  # built once, not per call

    def follows(change, undo) -> None:
        before = _uris(fluent.MlflowClient())
        change()
        try:
            reused = fluent.MlflowClient()
            assert _uris(reused) == _uris(MlflowClient()) != before
            assert fluent.MlflowClient() is reused
        finally:
            undo()
        assert _uris(fluent.MlflowClient()) == _uris(MlflowClient()) == before

    def unset_registry_uri():
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_REGISTRY_URI")  # set_registry_uri exported it for children

    follows(lambda: mlflow.set_registry_uri(second), unset_registry_uri)
    follows(lambda: monkeypatch.setenv("MLFLOW_REGISTRY_URI", second),
            lambda: monkeypatch.delenv("MLFLOW_REGISTRY_URI"))
    follows(lambda: workspace_utils.set_workspace_store_uri(second),
            lambda: workspace_utils.set_workspace_store_uri(None))
    follows(lambda: monkeypatch.setenv("MLFLOW_WORKSPACE_STORE_URI", second),
            lambda: monkeypatch.delenv("MLFLOW_WORKSPACE_STORE_URI"))
    follows(lambda: mlflow.set_tracking_uri(second), lambda: mlflow.set_tracking_uri(first))

    # What a user sees: after switching directories, a run and its points land in the new one.
    mlflow.set_tracking_uri(second)
    mlflow.set_experiment("e")
    with mlflow.start_run() as run:
        mlflow.log_metrics({"loss": 0.5}, step=3)
    history = MlflowClient(second).get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(3, 0.5)]
    assert MlflowClient(first).search_runs([MlflowClient(first).get_experiment_by_name("e")
                                            .experiment_id]).__len__() == 1

    # Any other tracking URI: MLflow's own client per call.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    assert fluent.MlflowClient() is not fluent.MlflowClient()
