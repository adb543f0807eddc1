"""`mytracker server`: MLflow's own tracking server on the Trackio store, several workers.

Clients log over http://127.0.0.1:PORT; the tests then look at the Trackio files the server
wrote, in-process with a `trackio://` MlflowClient and with Trackio's own reader.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from load_client import METRIC_KEYS, PARAMS_PER_RUN, metric_value, run_name
from servers import MYTRACKER, mytracker_server

LOAD_CLIENTS = 8
LOAD_RUNS_PER_CLIENT = 3
LOAD_STEPS = 700  # x 3 metric keys: 2,100 points per run, 50,400 in all
LOAD_CLIENT_SCRIPT = Path(__file__).with_name("load_client.py")


pytestmark = pytest.mark.heavy  # each test starts MLflow's tracking server

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mytracker server --workers 4` writing into the session's Trackio directory, so Trackio's
    own reader (which reads $TRACKIO_DIR) sees what the server wrote."""
    import os

    data_dir = Path(os.environ["TRACKIO_DIR"])
    log_path = tmp_path_factory.mktemp("server-log") / "server.log"
    with mytracker_server(data_dir, workers=4, log_path=log_path) as url:
        yield {"url": url, "dir": data_dir, "log": log_path}
    assert " 500 " not in log_path.read_text(errors="replace"), "the server answered a 500"


def test_clients_log_through_the_server_into_trackio_files(server, unique_name, tmp_path):
    mlflow.set_tracking_uri(server["url"])
    try:
        mlflow.set_experiment(unique_name)
        with mlflow.start_run(run_name="remote-run") as run:
            mlflow.log_params({"lr": 0.01, "optimizer": "adam"})
            for step in range(50):
                mlflow.log_metric("train/loss", 1.0 / (step + 1), step=step)
            notes = tmp_path / "notes.txt"
            notes.write_text("logged through the server\n")
            mlflow.log_artifact(str(notes))
            mlflow.log_dict({"classes": ["cat", "dog"]}, "eval/labels.json")
            mlflow.log_table({"question": ["2+2?", "3*3?"], "score": [1.0, 0.0]},
                             "eval/answers.json")
        remote = MlflowClient(server["url"])
        assert sorted(f.path for f in remote.list_artifacts(run.info.run_id)) == [
            "eval", "notes.txt"
        ]
    finally:
        mlflow.set_tracking_uri(None)

    # The same run, read straight from the Trackio files on the server's disk.
    local = MlflowClient(f"trackio://{server['dir']}")
    stored = local.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.info.run_name == "remote-run"
    assert stored.data.params == {"lr": "0.01", "optimizer": "adam"}
    history = local.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(50)]
    experiment_id = stored.info.experiment_id
    artifacts = server["dir"] / "mlflow-artifacts" / experiment_id / run.info.run_id / "artifacts"
    assert (artifacts / "notes.txt").read_text() == "logged through the server\n"
    assert json.loads((artifacts / "eval" / "labels.json").read_text()) == {
        "classes": ["cat", "dog"]
    }

    # ... and with Trackio's own reader: the project, the run, params as config, every point.
    from trackio.sqlite_storage import SQLiteStorage

    assert "remote-run" in SQLiteStorage.get_runs(unique_name)
    config = SQLiteStorage.get_run_config(unique_name, "remote-run")
    assert config["lr"] == "0.01" and config["optimizer"] == "adam"
    logs = SQLiteStorage.get_logs(unique_name, "remote-run")
    assert [(row["step"], row["train/loss"]) for row in logs if "train/loss" in row] == [
        (s, 1.0 / (s + 1)) for s in range(50)
    ]
    # The table logged through the server shows in Trackio's table view, as a local run's does.
    (table,) = [row["eval/answers"] for row in logs if "eval/answers" in row]
    assert table["_type"] == "trackio.table"
    assert table["_value"] == [{"question": "2+2?", "score": 1.0}, {"question": "3*3?", "score": 0.0}]


def test_eight_clients_lose_nothing(server, unique_name):
    started = time.monotonic()
    clients = [
        subprocess.Popen(
            [sys.executable, str(LOAD_CLIENT_SCRIPT), server["url"], unique_name, str(client),
             str(LOAD_RUNS_PER_CLIENT), str(LOAD_STEPS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for client in range(LOAD_CLIENTS)
    ]
    reported = []
    try:
        for client in clients:
            out, err = client.communicate(timeout=240)
            assert client.returncode == 0, err[-3000:]
            reported += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
    elapsed = time.monotonic() - started
    points = LOAD_CLIENTS * LOAD_RUNS_PER_CLIENT * LOAD_STEPS * len(METRIC_KEYS)
    print(f"\n{points} metric points from {LOAD_CLIENTS} clients in {elapsed:.1f}s")
    assert len(reported) == LOAD_CLIENTS * LOAD_RUNS_PER_CLIENT

    # Read back from the Trackio files: exact counts, exact values, nothing twice.
    local = MlflowClient(f"trackio://{server['dir']}")
    experiment = local.get_experiment_by_name(unique_name)
    runs = local.search_runs([experiment.experiment_id], max_results=1000)
    assert sorted(r.info.run_id for r in runs) == sorted(r["run_id"] for r in reported)
    from trackio.sqlite_storage import SQLiteStorage

    for entry in reported:
        client, run_index, run_id = entry["client"], entry["run"], entry["run_id"]
        run = local.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == run_name(client, run_index)
        assert len(run.data.params) == PARAMS_PER_RUN
        assert run.data.tags["client"] == str(client)
        for key_index, key in enumerate(METRIC_KEYS):
            history = local.get_metric_history(run_id, key)
            assert [(m.step, m.value) for m in history] == [
                (step, metric_value(client, run_index, key_index, step))
                for step in range(LOAD_STEPS)
            ]
        # Trackio's reader: every step once, every key at every step.
        logs = SQLiteStorage.get_logs(unique_name, run_id=run_id)
        for key_index, key in enumerate(METRIC_KEYS):
            steps = [row["step"] for row in logs if key in row]
            assert steps == list(range(LOAD_STEPS)), key
        artifacts = (server["dir"] / "mlflow-artifacts" / experiment.experiment_id / run_id
                     / "artifacts")
        assert (artifacts / "notes.txt").read_text() == f"run {run_name(client, run_index)}\n"
        assert json.loads((artifacts / "eval" / "summary.json").read_text())["steps"] == LOAD_STEPS
    trackio_runs = SQLiteStorage.get_runs(unique_name)
    assert sorted(trackio_runs) == sorted(run_name(r["client"], r["run"]) for r in reported)


def test_ui_calls_answer_with_empty_results_or_a_clean_error(server, unique_name):
    """The calls behind MLflow UI pages: never a 500 with a traceback."""
    client = MlflowClient(server["url"])
    experiment_id = client.create_experiment(unique_name)
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    ajax = server["url"] + "/ajax-api"
    locations = [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}]

    def call(method, path, params=None, body=None):
        response = requests.request(method, ajax + path, params=params, json=body, timeout=30)
        assert response.status_code < 500 or response.status_code == 501, (path, response.text)
        return response

    # Pages of a training experiment: real answers.
    experiments = call("GET", "/2.0/mlflow/experiments/search", {
        "max_results": 25, "order_by": "last_update_time DESC",
        "filter": "tags.`mlflow.experiment.isGateway` IS NULL"}).json()["experiments"]
    assert unique_name in [e["name"] for e in experiments]
    runs = call("POST", "/2.0/mlflow/runs/search", body={"experiment_ids": [experiment_id]})
    assert [r["info"]["run_id"] for r in runs.json()["runs"]] == [run.info.run_id]
    history = call("GET", "/2.0/mlflow/metrics/get-history-bulk-interval", {
        "run_ids": run.info.run_id, "metric_key": "loss", "max_results": 320}).json()
    assert [(m["step"], m["value"]) for m in history["metrics"]] == [(1, 0.5)]
    assert call("GET", "/2.0/mlflow/artifacts/list", {"run_id": run.info.run_id}).json() == {
        "root_uri": run.info.artifact_uri}
    # The registry lives in its own SQLite store next to the data.
    assert call("GET", "/2.0/mlflow/registered-models/search", {"max_results": 10}).json() == {}
    assert call("GET", "/2.0/mlflow/model-versions/search",
                {"filter": f"run_id='{run.info.run_id}'"}).json() == {}

    # What the store does not keep: empty lists.
    empty = [
        ("POST", "/2.0/mlflow/logged-models/search", {"experiment_ids": [experiment_id]}),
        ("POST", "/3.0/mlflow/traces/search", {"locations": locations}),
        ("POST", "/3.0/mlflow/datasets/search", {"experiment_ids": [experiment_id]}),
        ("POST", "/3.0/mlflow/traces/metrics", {
            "experiment_ids": [experiment_id], "view_type": "TRACES",
            "metric_name": "trace_count", "aggregations": [{"aggregation_type": "COUNT"}]}),
        ("POST", "/3.0/mlflow/issues/search", {"experiment_id": experiment_id}),
    ]
    for method, path, body in empty:
        answer = call(method, path, body=body)
        assert answer.status_code == 200 and not any(answer.json().values()), path
    for path in ("/3.0/mlflow/scorers/list", "/3.0/mlflow/label-schemas/list",
                 "/3.0/mlflow/review-queues/list"):
        answer = call("GET", path, {"experiment_id": experiment_id})
        assert answer.status_code == 200 and not any(answer.json().values()), path

    # Logged models are kept: an unknown one is MLflow's 404, as from its SQL store.
    missing = call("GET", "/2.0/mlflow/logged-models/m-0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # Unsupported lookups (traces): MLflow's JSON error with NOT_IMPLEMENTED, not an HTML 500.
    error = call("GET", "/3.0/mlflow/traces/tr-0123456789abcdef")
    assert error.status_code == 501
    assert error.json()["error_code"] == "NOT_IMPLEMENTED"
    assert "Trackio tracking store does not support" in error.json()["message"]


# --- command-line errors: one clear line, no traceback, nothing started ----------------------


def mytracker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(MYTRACKER + list(args), capture_output=True, text=True, timeout=60)


def test_server_refuses_a_dir_that_is_a_file(tmp_path):
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("x")
    result = mytracker("server", "--dir", str(not_a_dir))
    assert result.returncode == 2
    assert f"--dir {not_a_dir} exists and is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_server_refuses_a_dir_it_cannot_create(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = mytracker("server", "--dir", str(blocker / "sub"))
    assert result.returncode == 2
    assert "cannot create --dir" in result.stderr and "Traceback" not in result.stderr


def test_server_refuses_a_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = mytracker("server", "--dir", str(tmp_path), "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_show_refuses_a_missing_dir(tmp_path):
    result = mytracker("show", "--dir", str(tmp_path / "nothing-here"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
