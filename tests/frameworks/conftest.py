"""Fixtures for the framework tests: real training runs landing in Trackio's own home.

Every test here writes into Trackio's session data directory (``trackio_home``) under a fresh
experiment name, so the same run can be read back both through MLflow and through Trackio's own
reader and dashboard app.
"""

from __future__ import annotations

import os

import mlflow
import pytest

import mytracker


@pytest.fixture
def home_uri(trackio_home):
    """``trackio://`` with no path: Trackio's own default directory (this session's home)."""
    assert os.environ["TRACKIO_DIR"] == trackio_home
    return "trackio://"


@pytest.fixture
def experiment(home_uri, unique_name):
    """MLflow pointed at Trackio's home, with a fresh experiment; autologging stays off."""
    mlflow.set_tracking_uri(home_uri)
    mlflow.set_experiment(unique_name)
    yield unique_name
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def autologged(home_uri, unique_name):
    """mytracker.autolog() into Trackio's home, with a fresh experiment; undone afterwards."""
    mlflow.set_tracking_uri(home_uri)
    mytracker.autolog()
    mlflow.set_experiment(unique_name)
    yield unique_name
    while mlflow.active_run():
        mlflow.end_run()
    mytracker.autolog(disable=True)
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def dashboard():
    """Trackio's dashboard app in-process, as `trackio show` serves it."""
    from starlette.testclient import TestClient
    from trackio.server import build_starlette_app_only

    app, _ = build_starlette_app_only()
    with TestClient(app) as client:
        yield client
