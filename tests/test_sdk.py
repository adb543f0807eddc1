"""The Vertex-style manual API: init, start_run, log_*, end_run, get_experiment_df."""

import datetime as dt

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier

import mytracker


@pytest.fixture(autouse=True)
def clean_state(fresh_mlflow_state):
    yield


@pytest.fixture
def experiment(data_dir, unique_name):
    mytracker.init(experiment=unique_name, dir=data_dir)
    return unique_name


def test_manual_run_round_trip(experiment, data_dir):
    with mytracker.start_run("run-1") as run:
        mytracker.log_params({"learning_rate": 0.01, "optimizer": "adam"})
        mytracker.log_metrics({"accuracy": 0.93})
        for loss in (0.9, 0.5, 0.3):
            mytracker.log_time_series_metrics({"loss": loss})
    run_id = run.info.run_id

    client = mlflow.MlflowClient(f"trackio://{data_dir}")
    stored = client.get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.info.run_name == "run-1"
    assert stored.data.params == {"learning_rate": "0.01", "optimizer": "adam"}
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (1, 0.9), (2, 0.5), (3, 0.3)
    ]

    df = mytracker.get_experiment_df()
    assert list(df.columns) == [
        "experiment_name", "run_name", "run_id", "status",
        "param.learning_rate", "param.optimizer", "metric.accuracy", "metric.loss",
        "start_time", "end_time",
    ]
    [row] = df.to_dict("records")
    assert row["experiment_name"] == experiment and row["run_name"] == "run-1"
    assert row["status"] == "FINISHED" and row["end_time"] >= row["start_time"]
    assert row["param.optimizer"] == "adam"
    assert row["metric.accuracy"] == 0.93 and row["metric.loss"] == 0.3


def test_explicit_step_and_wall_time(experiment):
    wall_time = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    with mytracker.start_run("timed") as run:
        mytracker.log_time_series_metrics({"loss": 1.0}, step=10, wall_time=wall_time)
        mytracker.log_time_series_metrics({"loss": 0.5})  # continues after the largest step
    [first, second] = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert (first.step, first.timestamp) == (10, int(wall_time.timestamp() * 1000))
    assert second.step == 11


def test_resume_continues_the_same_run_and_its_steps(experiment):
    with mytracker.start_run("long") as run:
        mytracker.log_time_series_metrics({"loss": 1.0}, step=5)
    mytracker._sdk._last_step.clear()  # as in a new process: the step comes from the store
    with mytracker.start_run("long", resume=True) as resumed:
        mytracker.log_time_series_metrics({"loss": 0.5})
    assert resumed.info.run_id == run.info.run_id
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")]
    assert steps == [5, 6]
    assert len(mytracker.get_experiment_df()) == 1


def test_run_names_are_unique_like_vertex(experiment):
    with mytracker.start_run("once"):
        pass
    with pytest.raises(MlflowException, match="already exists.*resume=True"):
        mytracker.start_run("once")
    with pytest.raises(MlflowException, match="No run named 'never'"):
        mytracker.start_run("never", resume=True)


@pytest.mark.parametrize(
    "state, status", [("COMPLETE", "FINISHED"), ("FAILED", "FAILED"), ("CANCELLED", "KILLED"),
                      ("KILLED", "KILLED")]
)
def test_end_run_states(experiment, state, status):
    run = mytracker.start_run(f"ends-{state}")
    mytracker.end_run(state=state)
    assert mlflow.active_run() is None
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == status


def test_context_manager_marks_a_crash_as_failed(experiment):
    with pytest.raises(ZeroDivisionError):
        with mytracker.start_run("crash") as run:
            1 / 0
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FAILED"


def test_autologged_fit_inside_start_run_logs_into_that_run(experiment):
    mytracker.autolog()
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    with mytracker.start_run("with-autolog") as run:
        mytracker.log_params({"note": "manual"})
        DecisionTreeClassifier(max_depth=2).fit(X, y)
    mytracker.autolog(disable=True)

    [row] = mytracker.get_experiment_df().to_dict("records")
    assert row["run_id"] == run.info.run_id
    assert row["param.note"] == "manual" and row["param.max_depth"] == 2
    assert "metric.training_accuracy_score" in row


def test_bad_input_is_a_clear_error(experiment):
    with pytest.raises(MlflowException, match="No run is active"):
        mytracker.log_params({"a": 1})
    with mytracker.start_run("bad-input"):
        for call, arg, match in [
            (mytracker.log_params, ["not", "a", "dict"], "must be a dict"),
            (mytracker.log_params, {"a": [1, 2]}, "number or a string"),
            (mytracker.log_metrics, {"acc": "high"}, "must be a number"),
            (mytracker.log_metrics, {1: 0.5}, "keys must be strings"),
        ]:
            with pytest.raises(MlflowException, match=match):
                call(arg)
        with pytest.raises(MlflowException, match="step must be"):
            mytracker.log_time_series_metrics({"loss": 1.0}, step=-1)
        with pytest.raises(MlflowException, match="wall_time must be"):
            mytracker.log_time_series_metrics({"loss": 1.0}, wall_time="yesterday")
        with pytest.raises(MlflowException, match="state must be one of"):
            mytracker.end_run(state="DONE")
    with pytest.raises(MlflowException, match="run must be a non-empty string"):
        mytracker.start_run("")
    with pytest.raises(MlflowException, match="experiment must be"):
        mytracker.init(experiment="")
    with pytest.raises(MlflowException, match="No experiment named 'missing'"):
        mytracker.get_experiment_df("missing")


def test_start_run_needs_init():
    mytracker._sdk._experiment = None  # a fresh process
    with pytest.raises(MlflowException, match=r"mytracker.init\(experiment=...\)"):
        mytracker.start_run("r")


def test_get_experiment_df_of_an_empty_experiment(experiment):
    df = mytracker.get_experiment_df()
    assert df.empty and "run_name" in df.columns


def test_get_experiment_df_params_are_numbers_where_every_value_is_one(experiment):
    runs = {
        "a": {"lr": 0.1, "epochs": 10, "optimizer": "adam", "mixed": 5, "empty": ""},
        "b": {"lr": 0.01, "epochs": 20, "optimizer": "sgd", "mixed": "auto", "empty": "1"},
        "c": {"lr": 1e-3, "optimizer": "sgd", "mixed": 7},  # no epochs
    }
    for name, params in runs.items():
        with mytracker.start_run(name):
            mytracker.log_params(params)
            mytracker.log_metrics({"accuracy": 0.5})

    raw = mytracker.get_experiment_df()
    df = raw.set_index("run_name").sort_index()
    # What a Vertex user writes: filter and sort on numeric params.
    assert sorted(df[df["param.lr"] < 0.05].index) == ["b", "c"]
    assert list(df["param.lr"]) == [0.1, 0.01, 0.001]
    assert list(df["param.epochs"][:2]) == [10, 20] and pd.isna(df["param.epochs"]["c"])
    # A column with any non-number keeps MLflow's text, as does an empty value.
    assert list(df["param.optimizer"]) == ["adam", "sgd", "sgd"]
    assert list(df["param.mixed"]) == ["5", "auto", "7"]
    assert df["param.empty"]["a"] == "" and df["param.empty"]["b"] == "1"
    # Vertex's column order: the run's identity, params, metrics, then the rest.
    assert list(raw.columns) == [
        "experiment_name", "run_name", "run_id", "status",
        "param.empty", "param.epochs", "param.lr", "param.mixed", "param.optimizer",
        "metric.accuracy", "start_time", "end_time",
    ]
