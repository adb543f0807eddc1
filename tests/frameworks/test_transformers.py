"""Hugging Face transformers' Trainer reporting through its own MLflowCallback to trackio://.

A tiny BERT built from a config (nothing downloaded) and a tokenizer-free dataset of tensors.
"""

import mlflow
import pytest
from mlflow import MlflowClient
from trackio.sqlite_storage import SQLiteStorage

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.heavy


class Tokens(torch.utils.data.Dataset):
    """Random token ids; the label is whether the first token is in the upper half."""

    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(0, 50, (n, 8), generator=generator)
        self.labels = (self.input_ids[:, 0] >= 25).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def test_trainer_mlflow_callback(experiment, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "trackio://")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=8,
        learning_rate=1e-3, logging_steps=2, eval_strategy="epoch", save_strategy="no",
        report_to=["mlflow"], use_cpu=True, disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=transformers.BertForSequenceClassification(config), args=args,
        train_dataset=Tokens(32, seed=1), eval_dataset=Tokens(16, seed=2),
    )
    trainer.train()  # 32 samples / batch 8 = 4 steps per epoch, 8 in all

    [run] = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert run.info.status == "FINISHED"
    # Training arguments and the model config, sent in several params-only async batches.
    assert len(run.data.params) > 100
    assert run.data.params["learning_rate"] == "0.001"
    assert run.data.params["num_train_epochs"] == "2"
    assert run.data.params["hidden_size"] == "16"
    assert run.data.params["model_type"] == "bert"

    client = MlflowClient()
    steps = {
        key: [m.step for m in client.get_metric_history(run.info.run_id, key)]
        for key in ("loss", "learning_rate", "eval_loss", "train_loss")
    }
    assert steps == {
        "loss": [2, 4, 6, 8], "learning_rate": [2, 4, 6, 8], "eval_loss": [4, 8], "train_loss": [8],
    }

    # The same, as Trackio's reader shows it.
    rows = SQLiteStorage.get_logs(experiment, run.info.run_name, run_id=run.info.run_id)
    assert [row["step"] for row in rows if "loss" in row] == [2, 4, 6, 8]
    assert [row["step"] for row in rows if "eval_loss" in row] == [4, 8]
    name, run_id = run.info.run_name, run.info.run_id
    config_seen = SQLiteStorage.get_run_config(experiment, name, run_id=run_id)
    assert config_seen["model_type"] == "bert"
