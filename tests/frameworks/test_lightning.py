"""PyTorch Lightning autologging into Trackio, with mytracker.autolog() called before and after
`import lightning` (each in a fresh interpreter: import order is the whole point)."""

import re

import mlflow
import pytest
from framework_helpers import artifact_files, run_python
from mlflow import MlflowClient
from trackio.sqlite_storage import SQLiteStorage

pytestmark = pytest.mark.heavy

TRAIN = """
import torch
from torch.utils.data import DataLoader, TensorDataset


class Tiny(lightning.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
x = torch.randn(32, 4)
data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)  # 4 steps per epoch
mlflow.set_experiment(os.environ["EXPERIMENT"])
trainer = lightning.Trainer(
    max_epochs=2, log_every_n_steps=int(os.environ.get("LOG_EVERY", "1")), logger=False, enable_progress_bar=False,
    enable_checkpointing=False, accelerator="cpu",
)
trainer.fit(Tiny(), data, data)
print("RUN_ID", mlflow.last_active_run().info.run_id)
"""

BEFORE_IMPORT = "import os, mlflow, mytracker\nmytracker.autolog()\nimport lightning\n" + TRAIN
AFTER_IMPORT = "import os, mlflow, mytracker\nimport lightning\nmytracker.autolog()\n" + TRAIN
# Undone: MLflow's own Lightning autologging, which logs step metrics once per epoch.
DISABLED = (
    "import os, mlflow, mytracker\nimport lightning\n"
    "mytracker.autolog()\nmytracker.autolog(disable=True)\n"
    "mlflow.pytorch.autolog(log_models=False)\n"
) + TRAIN


def train_in_subprocess(script, experiment, tmp_path, log_every=1):
    env = {"EXPERIMENT": experiment, "LOG_EVERY": str(log_every)}
    result = run_python(script, env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_id] = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("RUN_ID")]
    return mlflow.get_run(run_id)


def history(run, key):
    return [m.step for m in MlflowClient().get_metric_history(run.info.run_id, key)]


@pytest.mark.parametrize("script", [BEFORE_IMPORT, AFTER_IMPORT], ids=["before", "after"])
def test_trainer_fit_two_epochs(script, experiment, tmp_path):
    run = train_in_subprocess(script, experiment, tmp_path)

    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2"
    assert run.data.params["optimizer_name"] == "SGD"
    assert run.data.params["lr"] == "0.1"
    assert run.data.tags["mlflow.autologging"] == "pytorch"
    assert history(run, "train_loss_epoch") == [0, 1]  # per epoch
    assert history(run, "val_loss") == [0, 1]
    assert {"model_summary.txt", "checkpoints/latest_checkpoint.pth"} <= artifact_files(run)
    # Per global step, as Trainer(log_every_n_steps=1) asks, with autolog() and nothing else.
    assert history(run, "train_loss_step") == [1, 2, 3, 4, 5, 6, 7, 8]

    # Trackio shows the same series.
    rows = SQLiteStorage.get_logs(experiment, run.info.run_name, run_id=run.info.run_id)
    assert [row["step"] for row in rows if "train_loss_epoch" in row] == [0, 1]
    assert [row["step"] for row in rows if "train_loss_step" in row] == list(range(1, 9))
    config = SQLiteStorage.get_run_config(experiment, run.info.run_name, run_id=run.info.run_id)
    assert config["optimizer_name"] == "SGD"


def test_step_metrics_follow_the_trainers_log_every_n_steps(experiment, tmp_path):
    run = train_in_subprocess(BEFORE_IMPORT, experiment, tmp_path, log_every=2)
    assert history(run, "train_loss_step") == [1, 3, 5, 7]  # every 2nd of 8 steps
    assert history(run, "train_loss_epoch") == [0, 1]


def test_disable_gives_back_mlflows_own_lightning_autologging(experiment, tmp_path):
    run = train_in_subprocess(DISABLED, experiment, tmp_path)
    # MLflow's default: no per-step logging, the last step value once per epoch.
    assert history(run, "train_loss_step") == [0, 1]


def test_the_users_own_log_every_n_step_wins(experiment, tmp_path):
    script = AFTER_IMPORT.replace(
        "mytracker.autolog()\n",
        "mytracker.autolog()\nmlflow.pytorch.autolog(log_every_n_step=4, log_models=False)\n",
    )
    run = train_in_subprocess(script, experiment, tmp_path, log_every=1)
    assert history(run, "train_loss_step") == [3, 7]  # MLflow's every-4th-step rule, not the Trainer's


# --- issue #14: models and checkpoints with mytracker.autolog(log_models=True) ---------------

LOG_MODELS = (
    "import os, mlflow, mytracker\nimport lightning\nmytracker.autolog(log_models=True)\n"
    + TRAIN.replace(
        "    def training_step",
        "    def forward(self, x):\n        return self.layer(x)\n\n    def training_step", 1,
    ).replace("trainer.fit(Tiny(), data, data)", "model = Tiny()\ntrainer.fit(model, data, data)")
    + """
# Loaded back in this process, where the model's class lives (__main__).
run_id = mlflow.last_active_run().info.run_id
[logged] = mlflow.search_logged_models(output_format="list")
expected = model(x).detach()
for uri in (f"runs:/{run_id}/model", f"models:/{logged.model_id}"):
    print("TORCH_EQUAL", torch.equal(mlflow.pytorch.load_model(uri)(x).detach(), expected))
    predicted = mlflow.pyfunc.load_model(uri).predict(x.numpy())
    print("PYFUNC_EQUAL", bool((torch.as_tensor(predicted) == expected).all()))
restored = mlflow.pytorch.load_checkpoint(Tiny, run_id)
print("CHECKPOINT_EQUAL", torch.equal(restored(x).detach(), expected))
"""
)
# MLflow's own advice on saving any torch model, on any tracking store (MLflow's SQLite store
# prints the same two): not about the store.
MLFLOW_TORCH_ADVICE = ("Saving pytorch model by Pickle or CloudPickle format",
                       "contains a local version label")


def test_log_models_with_checkpoints(experiment, tmp_path):
    """Two epochs with MLflow's checkpoint logging (pytorch autolog's default `checkpoint=True`,
    best `val_loss` kept): the checkpoint is among the run's artifacts, the final model is a
    LoggedModel of the run, both load back, and neither MLflow nor mytracker warns."""
    result = run_python(LOG_MODELS, {"EXPERIMENT": experiment, "LOG_EVERY": "1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run_id] = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("RUN_ID")]
    run = mlflow.get_run(run_id)
    assert [line for line in result.stdout.splitlines() if "_EQUAL " in line] == [
        "TORCH_EQUAL True", "PYFUNC_EQUAL True", "TORCH_EQUAL True", "PYFUNC_EQUAL True",
        "CHECKPOINT_EQUAL True",
    ]
    client = MlflowClient()
    checkpoints = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert checkpoints == [
        "checkpoints/latest_checkpoint.pth", "checkpoints/latest_checkpoint_metrics.json"
    ]
    [model] = mlflow.search_logged_models(output_format="list")
    assert (model.source_run_id, model.status, model.name) == (run.info.run_id, "READY", "model")
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]
    files = {a.path for a in client.list_logged_model_artifacts(model.model_id)}
    assert {"MLmodel", "data"} <= files, files
    warned = [
        line for line in result.stderr.splitlines()
        if re.search(r"(mlflow|mytracker|trackio).*warn|warn.*(mlflow|mytracker|trackio)", line, re.I)
        and not any(advice in line for advice in MLFLOW_TORCH_ADVICE)
    ]
    assert warned == [], "\n".join(warned)
