"""MLflow system metrics (CPU, memory, disk, network) in Trackio's System view.

    python examples/frameworks/system_metrics_example.py && trackio show --project system-example
"""

import time

import mlflow
import mytracker
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier

mytracker.autolog()
mlflow.set_experiment("system-example")
mlflow.set_system_metrics_sampling_interval(1)

X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
model = SGDClassifier(random_state=0)
with mlflow.start_run(log_system_metrics=True):
    for epoch in range(10):
        model.partial_fit(X, y, classes=[0, 1])
        mlflow.log_metric("train_accuracy", model.score(X, y), step=epoch)
        time.sleep(0.5)
