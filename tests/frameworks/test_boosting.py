"""XGBoost and LightGBM autologging into Trackio: native train() with eval sets and early
stopping, and the scikit-learn wrappers."""

import lightgbm as lgb
import mlflow
import xgboost as xgb
from framework_helpers import artifact_files
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from trackio.sqlite_storage import SQLiteStorage


def noisy_data():
    # Label noise makes a deep, fast learner overfit at once, so early stopping really stops.
    return make_classification(n_samples=200, n_features=5, flip_y=0.3, random_state=0)


def history(run, key):
    return [(m.step, m.value) for m in MlflowClient().get_metric_history(run.info.run_id, key)]


def trackio_series(project, run, key):
    rows = SQLiteStorage.get_logs(project, run.info.run_name, run_id=run.info.run_id)
    return [(row["step"], row[key]) for row in rows if key in row]


def test_xgb_train_with_eval_set_and_early_stopping(autologged):
    X, y = noisy_data()
    train, val = xgb.DMatrix(X[:150], y[:150]), xgb.DMatrix(X[150:], y[150:])
    params = {"objective": "binary:logistic", "eta": 1.0, "max_depth": 6}
    with mlflow.start_run() as active:
        booster = xgb.train(
            params, train, num_boost_round=50, evals=[(train, "train"), (val, "val")],
            early_stopping_rounds=3,
        )

    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["eta"] == "1.0"
    assert run.data.params["early_stopping_rounds"] == "3"
    assert run.data.params["num_boost_round"] == "50"
    stopped = int(run.data.metrics["stopped_iteration"])
    assert stopped < 49  # early stopping fired
    assert run.data.metrics["best_iteration"] == booster.best_iteration

    # One point per boosting round, then the best round's value one step past the last round.
    val_history = history(run, "val-logloss")
    assert [step for step, _ in val_history] == list(range(stopped + 2))
    assert val_history[-1][1] == val_history[booster.best_iteration][1]
    assert trackio_series(autologged, run, "val-logloss") == val_history

    assert {(d.dataset.name, d.tags[0].value) for d in run.inputs.dataset_inputs} == {
        ("dataset", "train"), ("train", "eval"), ("val", "eval"),
    }
    assert {"feature_importance_weight.png", "feature_importance_weight.json"} <= (
        artifact_files(run)
    )


def test_xgb_classifier(autologged):
    X, y = noisy_data()
    with mlflow.start_run() as active:
        xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y, eval_set=[(X, y)], verbose=False)

    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["max_depth"] == "2"
    assert run.data.params["num_boost_round"] == "5"
    assert [step for step, _ in history(run, "validation_0-logloss")] == [0, 1, 2, 3, 4]
    assert "feature_importance_weight.png" in artifact_files(run)
    config = SQLiteStorage.get_run_config(autologged, run.info.run_name, run_id=run.info.run_id)
    assert config["max_depth"] == "2"


def test_lgb_train_with_valid_sets(autologged):
    X, y = noisy_data()
    train = lgb.Dataset(X[:150], y[:150])
    valid = lgb.Dataset(X[150:], y[150:], reference=train)
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 1.0, "verbose": -1}
    with mlflow.start_run() as active:
        booster = lgb.train(
            params, train, num_boost_round=50, valid_sets=[train, valid],
            valid_names=["train", "valid"], callbacks=[lgb.early_stopping(3, verbose=False)],
        )

    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["num_leaves"] == "31"
    assert run.data.params["num_boost_round"] == "50"
    stopped = int(run.data.metrics["stopped_iteration"])
    assert stopped < 50
    assert run.data.metrics["best_iteration"] == booster.best_iteration
    valid_history = history(run, "valid-binary_logloss")
    assert [step for step, _ in valid_history] == list(range(stopped + 1))
    assert trackio_series(autologged, run, "valid-binary_logloss") == valid_history
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"dataset", "train", "valid"}
    assert {"feature_importance_gain.png", "feature_importance_split.png"} <= artifact_files(run)


def test_lgbm_classifier(autologged):
    X, y = noisy_data()
    with mlflow.start_run() as active:
        lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1).fit(X, y, eval_set=[(X, y)])

    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["num_leaves"] == "4"
    assert run.data.params["num_boost_round"] == "5"
    assert [step for step, _ in history(run, "training-binary_logloss")] == [0, 1, 2, 3, 4]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["dataset"]
    assert {"feature_importance_gain.png", "feature_importance_split.json"} <= artifact_files(run)
