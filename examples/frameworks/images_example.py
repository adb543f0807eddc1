"""Images MLflow logs, in Trackio's dashboard: autologged plots (confusion matrix, ROC curve),
mlflow.log_image (also as a series over steps) and mlflow.log_figure.

Every artifact is listed in the Files view; images also appear in the Media view once the run
ends (see docs/frameworks.md, "Images").

    python examples/frameworks/images_example.py && trackio show --project images-example
"""

import matplotlib
import mlflow
import mytracker
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

mytracker.autolog()
mlflow.set_experiment("images-example")

X, y = make_classification(n_samples=200, n_features=6, random_state=0)
rng = np.random.default_rng(0)
with mlflow.start_run():
    LogisticRegression(max_iter=300).fit(X, y)  # confusion matrix, ROC and PR curves
    for step in range(3):
        sample = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        mlflow.log_image(sample, key="samples", step=step)
    figure, axes = plt.subplots()
    axes.plot(np.exp(-np.arange(20) / 5))
    mlflow.log_figure(figure, "plots/loss_curve.png")
    mlflow.flush_artifact_async_logging()  # log_image(key=...) writes in the background
