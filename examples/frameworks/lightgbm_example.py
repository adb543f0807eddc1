"""LightGBM into Trackio: lgb.train with validation sets and early stopping, then LGBMClassifier.

    python examples/frameworks/lightgbm_example.py && trackio show --project lightgbm-example
"""

import lightgbm as lgb
import mlflow
import mytracker
from sklearn.datasets import make_classification

mytracker.autolog()
mlflow.set_experiment("lightgbm-example")

X, y = make_classification(n_samples=500, n_features=8, flip_y=0.2, random_state=0)
train = lgb.Dataset(X[:400], y[:400])
valid = lgb.Dataset(X[400:], y[400:], reference=train)
with mlflow.start_run(run_name="lgb-train"):
    lgb.train(
        {"objective": "binary", "learning_rate": 0.3, "verbose": -1}, train, num_boost_round=100,
        valid_sets=[train, valid], valid_names=["train", "valid"],
        callbacks=[lgb.early_stopping(5, verbose=False)],
    )
with mlflow.start_run(run_name="lgbm-classifier"):
    lgb.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1).fit(X, y, eval_set=[(X, y)])
