"""scikit-learn into Trackio: an estimator, a Pipeline and a GridSearchCV with child runs.

    python examples/frameworks/sklearn_example.py && trackio show --project sklearn-example
"""

import mlflow
import mytracker
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

mytracker.autolog()  # MLflow autologging, written into Trackio's default directory
mlflow.set_experiment("sklearn-example")

X, y = make_classification(n_samples=300, n_features=8, random_state=0)
with mlflow.start_run(run_name="logistic-regression"):
    LogisticRegression(C=0.5, max_iter=300).fit(X, y)
with mlflow.start_run(run_name="pipeline"):
    Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]).fit(X, y)
with mlflow.start_run(run_name="grid-search"):  # one child run per candidate, grouped under it
    GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
print("Runs:", len(mlflow.search_runs()), "- see them with: trackio show --project sklearn-example")
