"""transformers' Trainer into Trackio through its own MLflowCallback (no mytracker code needed).

A tiny BERT built from a config: nothing is downloaded.

    MLFLOW_TRACKING_URI=trackio:// MLFLOW_EXPERIMENT_NAME=transformers-example \\
        python examples/frameworks/transformers_example.py
"""

import os
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

os.environ.setdefault("MLFLOW_TRACKING_URI", "trackio://")
os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "transformers-example")


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(0, 100, (n, 16), generator=generator)
        self.labels = (self.input_ids[:, 0] >= 50).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


config = BertConfig(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, max_position_embeddings=32, num_labels=2,
)
args = TrainingArguments(
    output_dir=tempfile.mkdtemp(), num_train_epochs=2, per_device_train_batch_size=16,
    learning_rate=1e-3, logging_steps=2, eval_strategy="epoch", save_strategy="no",
    report_to=["mlflow"], use_cpu=True,
)
Trainer(
    model=BertForSequenceClassification(config), args=args,
    train_dataset=Tokens(128, seed=1), eval_dataset=Tokens(32, seed=2),
).train()
