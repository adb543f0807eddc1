"""XGBoost into Trackio: xgb.train with an eval set and early stopping, then XGBClassifier.

    python examples/frameworks/xgboost_example.py && trackio show --project xgboost-example
"""

import mlflow
import mytracker
import xgboost as xgb
from sklearn.datasets import make_classification

mytracker.autolog()
mlflow.set_experiment("xgboost-example")

X, y = make_classification(n_samples=500, n_features=8, flip_y=0.2, random_state=0)
train, val = xgb.DMatrix(X[:400], y[:400]), xgb.DMatrix(X[400:], y[400:])
with mlflow.start_run(run_name="xgb-train"):
    xgb.train(
        {"objective": "binary:logistic", "eta": 0.5, "max_depth": 4}, train,
        num_boost_round=100, evals=[(train, "train"), (val, "val")], early_stopping_rounds=5,
    )
with mlflow.start_run(run_name="xgb-classifier"):
    xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y, eval_set=[(X, y)], verbose=False)
