"""PyTorch Lightning autologging into Trackio, with mytracker.autolog() called before and after
`import lightning` (each in a fresh interpreter: import order is the whole point)."""

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
