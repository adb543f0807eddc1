"""torchtune's MLflow metric logger writing to trackio://, built from a recipe config the way
a recipe builds it (`config.instantiate(cfg.metric_logger)`)."""

import mlflow
import pytest
from framework_helpers import artifact_files
from mlflow import MlflowClient
from trackio.sqlite_storage import SQLiteStorage

pytestmark = pytest.mark.heavy
torchtune = pytest.importorskip("torchtune")

from omegaconf import OmegaConf  # noqa: E402
from torchtune import config as tt_config  # noqa: E402


@pytest.fixture
def recipe_config(tmp_path, unique_name):
    """The part of a recipe config a metric logger sees; `log_dir` as DiskLogger configs set it."""
    return OmegaConf.create({
        "output_dir": str(tmp_path / "out"),
        "batch_size": 4,
        "optimizer": {"_component_": "torch.optim.AdamW", "lr": 3e-4},
        "metric_logger": {
            "_component_": "mytracker.integrations.torchtune.MLFlowLogger",
            "log_dir": "${output_dir}/logs",
            "tracking_uri": "trackio://",
            "experiment_name": unique_name,
        },
    })


@pytest.fixture
def cleanup():
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_torchtune_own_logger_rejects_log_dir(recipe_config):
    recipe_config.metric_logger._component_ = "torchtune.training.metric_logging.MLFlowLogger"
    with pytest.raises(TypeError, match="unexpected keyword argument 'log_dir'"):
        tt_config.instantiate(recipe_config.metric_logger)


def test_drop_in_metric_logger(recipe_config, unique_name, cleanup):
    metric_logger = tt_config.instantiate(recipe_config.metric_logger)
    metric_logger.log_config(recipe_config)
    for step in (1, 2, 3):
        metric_logger.log("loss", 1.0 / step, step)
        metric_logger.log_dict({"lr": 3e-4, "tokens_per_second_per_gpu": 100.0 * step}, step)
    run_id = metric_logger._run_id
    metric_logger.close()

    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert mlflow.get_experiment(run.info.experiment_id).name == unique_name
    assert run.data.params["batch_size"] == "4"
    assert run.data.params["optimizer.lr"] == "0.0003"
    assert run.data.params["metric_logger.log_dir"].endswith("/out/logs")
    history = MlflowClient().get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert artifact_files(run) == {"torchtune_config.yaml"}

    rows = SQLiteStorage.get_logs(unique_name, run.info.run_name, run_id=run_id)
    assert [row["step"] for row in rows if "tokens_per_second_per_gpu" in row] == [1, 2, 3]
    assert SQLiteStorage.get_run_config(unique_name, run.info.run_name, run_id=run_id)[
        "optimizer.lr"
    ] == "0.0003"


def test_drop_in_logger_joins_an_active_run(tmp_path, unique_name, cleanup):
    from mytracker.integrations.torchtune import MLFlowLogger

    mlflow.set_tracking_uri("trackio://")
    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        metric_logger = MLFlowLogger(log_dir=tmp_path)  # torchtune's own raises AttributeError
        metric_logger.log("loss", 0.5, 1)
    assert mlflow.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
