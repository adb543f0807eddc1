"""scikit-learn autologging into Trackio: an estimator, a Pipeline, GridSearchCV with child runs."""

import mlflow
from framework_helpers import artifact_files
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from trackio.sqlite_storage import SQLiteStorage


def data():
    return make_classification(n_samples=120, n_features=5, random_state=0)


def test_estimator_fit_lands_in_trackio(autologged, dashboard):
    X, y = data()
    with mlflow.start_run() as active:
        LogisticRegression(C=0.5, max_iter=200).fit(X, y)

    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["C"] == "0.5"
    assert run.data.params["max_iter"] == "200"
    assert 0.5 < run.data.metrics["training_accuracy_score"] <= 1.0
    assert {"training_f1_score", "training_log_loss", "training_roc_auc"} <= set(run.data.metrics)
    assert run.data.tags["estimator_name"] == "LogisticRegression"
    assert run.data.tags["estimator_class"] == "sklearn.linear_model._logistic.LogisticRegression"
    [dataset_input] = run.inputs.dataset_inputs
    assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "train"}
    assert '"features_shape": [120, 5]' in dataset_input.dataset.profile
    assert {"estimator.html", "training_confusion_matrix.png", "training_roc_curve.png"} <= (
        artifact_files(run)
    )

    # Trackio's own reader shows the same run, params and metrics.
    project = autologged
    records = SQLiteStorage.get_run_records(project)
    assert [(r["id"], r["name"]) for r in records] == [(run.info.run_id, run.info.run_name)]
    config = SQLiteStorage.get_run_config(project, run.info.run_name, run_id=run.info.run_id)
    assert config["C"] == "0.5"
    assert config["_mlflow_tags"]["estimator_name"] == "LogisticRegression"
    rows = SQLiteStorage.get_logs(project, run.info.run_name, run_id=run.info.run_id)
    assert [row["training_accuracy_score"] for row in rows if "training_accuracy_score" in row] == [
        run.data.metrics["training_accuracy_score"]
    ]

    # ... and so does the dashboard.
    runs = dashboard.post("/api/get_runs_for_project", json={"project": project}).json()["data"]
    assert [r["id"] for r in runs] == [run.info.run_id]


def test_pipeline_params_use_step_names(autologged):
    X, y = data()
    pipeline = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))])
    with mlflow.start_run() as active:
        pipeline.fit(X, y)

    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["clf__max_iter"] == "300"
    assert run.data.params["scale__with_mean"] == "True"
    assert run.data.tags["estimator_name"] == "Pipeline"
    assert "training_accuracy_score" in run.data.metrics
    assert {"estimator.html", "training_confusion_matrix.png"} <= artifact_files(run)
    config = SQLiteStorage.get_run_config(autologged, run.info.run_name, run_id=run.info.run_id)
    assert config["clf__max_iter"] == "300"


def test_grid_search_child_runs_nest_under_parent(autologged):
    X, y = data()
    search = GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0, 10.0]}, cv=2)
    with mlflow.start_run() as active:
        search.fit(X, y)

    parent = mlflow.get_run(active.info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["best_C"] == str(search.best_params_["C"])
    assert parent.data.params["param_grid"] == "{'C': [0.1, 1.0, 10.0]}"
    assert parent.data.metrics["best_cv_score"] == search.best_score_
    assert "cv_results.csv" in artifact_files(parent)

    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list"
    )
    assert sorted(c.data.params["C"] for c in children) == ["0.1", "1.0", "10.0"]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert all("mean_test_score" in c.data.metrics for c in children)

    # Trackio groups the children under the parent run's name.
    for child in children:
        name, run_id = child.info.run_name, child.info.run_id
        config = SQLiteStorage.get_run_config(autologged, name, run_id=run_id)
        assert config["_Group"] == parent.info.run_name
    assert len(SQLiteStorage.get_run_records(autologged)) == 4
