"""PyTorch Lightning into Trackio: Trainer.fit for 2 epochs, metrics per step and per epoch.

mytracker.autolog() may come before or after `import lightning` (MLflow's own autolog must come
after). Step metrics follow the Trainer's `log_every_n_steps` (here every step); MLflow alone
would log them once per epoch.

    python examples/frameworks/lightning_example.py && trackio show --project lightning-example
"""

import mlflow
import mytracker

mytracker.autolog()

import lightning  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


class Regressor(lightning.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
x = torch.randn(256, 4)
data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32)
mlflow.set_experiment("lightning-example")
trainer = lightning.Trainer(max_epochs=2, log_every_n_steps=1, logger=False, accelerator="cpu")
trainer.fit(Regressor(), data, data)
