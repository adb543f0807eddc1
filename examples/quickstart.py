"""Quickstart: every scikit-learn fit lands in Trackio, with one call.

    pip install -e . scikit-learn           # from a clone of the repository (not on PyPI)
    python examples/quickstart.py
    mytracker show --project quickstart     # or: trackio show --project quickstart

Data goes to Trackio's own directory ($TRACKIO_DIR, else ~/.cache/huggingface/trackio), one
file per experiment: quickstart.db.
"""

import sys
from pathlib import Path

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import mytracker

mytracker.init(experiment="quickstart")  # the Trackio project; created if it does not exist
mytracker.autolog()  # from here on, MLflow autologs every supported framework into Trackio

X, y = make_classification(n_samples=500, n_features=10, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
model = RandomForestClassifier(n_estimators=50, max_depth=5, random_state=0)
model.fit(X_train, y_train)  # one run: params, training metrics
print(f"test accuracy: {model.score(X_test, y_test):.3f}")  # logged to the same run

mytracker.autolog(disable=True)  # MLflow back exactly as it was

runs = mytracker.get_experiment_df("quickstart")
columns = ["run_name", "status", "param.n_estimators", "metric.training_accuracy_score",
           "metric.RandomForestClassifier_score_X_test"]
print(runs[columns].to_string())

from trackio.sqlite_storage import SQLiteStorage  # noqa: E402  (Trackio's own reader)

print(f"\nData written to {SQLiteStorage.get_project_db_path('quickstart')}")
mytracker_command = Path(sys.executable).parent / "mytracker"  # works without activating the venv
print(f"Open the dashboard with:  {mytracker_command} show --project quickstart")
