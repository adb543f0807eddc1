"""Issue #15: runs written with Trackio's own API are MLflow runs too (one directory, two doors).

Each Trackio writer is a real process running `trackio.init` / `trackio.log` / `trackio.finish`
with TRACKIO_DIR set before it imports trackio; MLflow then reads the same directory through
`trackio://` (fluent API, MlflowClient, `mytracker copy`), and writes back into Trackio's runs
while Trackio's own reader keeps working.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mytracker.store import _native
from mytracker.store._trackio import NATIVE_ID_BASE, ms_from_iso

TRACKIO_WRITER = """
import sys, time
import trackio

project, name, steps, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
run = trackio.init(
    project=project, name=name, config={"lr": 0.1, "layers": [64, 32], "optimizer": "adam"},
    auto_log_cpu=False, auto_log_gpu=False,
)
print("RUN_ID", run.id, flush=True)
for step in range(steps):
    # "step" is a key Trackio reserves: it stores it as "__step"; "phase" is no number.
    trackio.log({"loss": 1.0 / (step + 1), "step": step * 10, "phase": "warmup"}, step=step)
    if pause:
        time.sleep(pause)
trackio.log_system({"cpu/percent": 12.5})
trackio.finish()
"""


def _trackio_writer(data_dir: Path, project: str, name: str, steps: int, pause: float = 0.0,
                    **kwargs) -> subprocess.Popen:
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(TRACKIO_WRITER), project, name, str(steps), str(pause)],
        env={**os.environ, "TRACKIO_DIR": str(data_dir)},  # read by trackio once, at import
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


def _run_id(writer: subprocess.Popen) -> str:
    """The run id the writer prints (after Trackio's own messages)."""
    for line in writer.stdout:
        if line.startswith("RUN_ID "):
            return line.split()[1]
    raise AssertionError(writer.stderr.read())


def _run_trackio(data_dir: Path, project: str, name: str, steps: int) -> str:
    writer = _trackio_writer(data_dir, project, name, steps)
    run_id = _run_id(writer)
    _, err = writer.communicate(timeout=180)
    assert writer.returncode == 0, err
    return run_id


@pytest.fixture
def finished_now(monkeypatch):
    """Trackio records no run status: a run idle for IDLE_S counts as finished. Zero here."""
    monkeypatch.setattr(_native, "IDLE_S", 0.0)


def test_trackio_projects_and_runs_are_mlflow_experiments_and_runs(data_dir, store_uri, finished_now):
    client = MlflowClient(store_uri)
    made_id = client.create_experiment("made")  # a project mytracker made ...
    mlflow_run = client.create_run(made_id, run_name="mlflow-run")
    client.set_terminated(mlflow_run.info.run_id)
    solo_run = _run_trackio(data_dir, "solo", "trackio-solo", 5)  # ... and one of Trackio's own
    made_run = _run_trackio(data_dir, "made", "trackio-in-made", 3)

    # Every Trackio project is an experiment; its id is derived from the project's file name,
    # outside the sequential ids, and the same in another process.
    experiments = {e.name: e for e in client.search_experiments()}
    assert {"solo", "made"} <= set(experiments)
    solo = experiments["solo"]
    assert int(solo.experiment_id) >= NATIVE_ID_BASE and int(made_id) < NATIVE_ID_BASE
    assert solo.tags == {"mytracker.origin": "trackio"}
    other_process = subprocess.run(
        [sys.executable, "-c", "import sys, mlflow; "
         "print(mlflow.MlflowClient(sys.argv[1]).get_experiment_by_name('solo').experiment_id)",
         store_uri],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert other_process.stdout.strip() == solo.experiment_id
    assert client.get_experiment(solo.experiment_id).name == "solo"
    # A new experiment still takes the next sequential id.
    assert client.create_experiment("after") == str(int(made_id) + 1)

    # The fluent API lists the Trackio runs beside MLflow's, with params, metrics and tags.
    mlflow.set_tracking_uri(store_uri)
    try:
        frame = mlflow.search_runs(experiment_names=["solo", "made"])
    finally:
        mlflow.set_tracking_uri(None)
    assert sorted(frame["tags.mlflow.runName"]) == ["mlflow-run", "trackio-in-made", "trackio-solo"]
    row = frame[frame["run_id"] == solo_run].iloc[0]
    assert row["params.lr"] == "0.1" and row["params.layers"] == "[64, 32]"
    assert row["metrics.loss"] == pytest.approx(0.2) and row["metrics.step"] == 40
    assert row["status"] == "FINISHED"
    assert row["experiment_id"] == solo.experiment_id

    run = client.get_run(solo_run)
    assert run.info.run_name == "trackio-solo" and run.info.experiment_id == solo.experiment_id
    assert run.data.params == {"lr": "0.1", "layers": "[64, 32]", "optimizer": "adam"}
    assert set(run.data.metrics) == {"loss", "step", "system/cpu/percent"}  # "phase" is no number
    assert run.data.tags["mytracker.origin"] == "trackio"
    assert run.info.user_id  # Trackio's _Username, or MLflow's "unknown"

    # Points keep their steps and timestamps; start and end are Trackio's own times.
    conn = sqlite3.connect(data_dir / "solo.db")
    rows = conn.execute(
        "SELECT step, timestamp FROM metrics WHERE run_id = ? ORDER BY id", (solo_run,)
    ).fetchall()
    history = client.get_metric_history(solo_run, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (step, 1.0 / (step + 1), ms_from_iso(ts)) for step, ts in rows
    ]
    assert [m.value for m in client.get_metric_history(solo_run, "step")] == [0, 10, 20, 30, 40]
    assert [m.value for m in client.get_metric_history(solo_run, "system/cpu/percent")] == [12.5]
    created = conn.execute("SELECT config FROM configs WHERE run_id = ?", (solo_run,)).fetchone()[0]
    assert run.info.start_time == ms_from_iso(json.loads(created)["_Created"])
    assert run.info.end_time >= ms_from_iso(rows[-1][1])

    # Search semantics: filters and order over Trackio's runs and MLflow's together.
    both = [solo.experiment_id, made_id]
    found = client.search_runs(both, "tags.`mytracker.origin` = 'trackio'", order_by=["metrics.loss"])
    assert [r.info.run_id for r in found] == [solo_run, made_run]
    assert [r.info.run_id for r in client.search_runs(both, "params.optimizer = 'adam' AND metrics.loss < 0.3")] == [solo_run]
    page = client.search_runs(both, max_results=2, order_by=["attributes.run_name"])
    assert [r.info.run_name for r in page] == ["mlflow-run", "trackio-in-made"]
    rest = client.search_runs(both, max_results=2, order_by=["attributes.run_name"], page_token=page.token)
    assert [r.info.run_name for r in rest] == ["trackio-solo"]

    # Reading changed nothing in the project Trackio made.
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not any(t.startswith("mlflow_") for t in tables)


def test_a_running_trackio_run_and_a_writer_logging_while_mlflow_reads(data_dir, store_uri, monkeypatch):
    client = MlflowClient(store_uri)
    writer = _trackio_writer(data_dir, "live", "live-run", 400, pause=0.01)
    run_id = _run_id(writer)
    seen, errors = [], []
    while writer.poll() is None:
        try:
            run = client.get_run(run_id)
            history = client.get_metric_history(run_id, "loss")
            experiment = client.get_experiment_by_name("live")
            client.search_runs([experiment.experiment_id])
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":  # before Trackio's first flush
                errors.append(e)
            continue
        steps = [m.step for m in history]
        assert steps == list(range(len(steps)))  # always a whole prefix, in order
        assert run.info.status == "RUNNING" and run.info.end_time is None
        seen.append(len(steps))
    assert writer.returncode == 0, writer.stderr.read()
    assert not errors
    assert len(seen) > 3 and seen == sorted(seen)
    history = client.get_metric_history(run_id, "loss")
    assert len(history) == 400
    # Trackio recorded no end: the run stays RUNNING until it has been idle for IDLE_S (300 s),
    # then it is FINISHED, ended at its last row.
    assert client.get_run(run_id).info.status == "RUNNING"
    monkeypatch.setattr(_native, "IDLE_S", 0.0)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time >= max(m.timestamp for m in history)


def test_mlflow_writes_to_a_run_trackio_is_still_logging(data_dir, store_uri):
    client = MlflowClient(store_uri)
    writer = _trackio_writer(data_dir, "shared", "both-doors", 300, pause=0.01)
    run_id = _run_id(writer)
    while True:  # once Trackio's first rows are in, MLflow writes to the same run
        try:
            if client.get_metric_history(run_id, "loss"):
                break
        except MlflowException:
            pass
    client.set_tag(run_id, "watched", "yes")  # adopts the project and records the run
    for step in range(5):
        client.log_metric(run_id, "mlflow/eval", step / 10, step=step)
    _, err = writer.communicate(timeout=180)
    assert writer.returncode == 0, err
    assert "locked" not in err
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(300))  # none of Trackio's rows lost
    assert [m.value for m in client.get_metric_history(run_id, "mlflow/eval")] == [0, 0.1, 0.2, 0.3, 0.4]
    conn = sqlite3.connect(data_dir / "shared.db")
    assert conn.execute(
        "SELECT count(*) FROM metrics WHERE run_id = ? AND instr(metrics, ?)", (run_id, '"loss"')
    ).fetchone()[0] == 300


def test_mytracker_copy_carries_trackio_runs_to_sqlite(data_dir, store_uri, tmp_path, finished_now):
    run_id = _run_trackio(data_dir, "tocopy", "copied", 4)
    target = tmp_path / "mlflow.db"
    env = {**os.environ, "MYTRACKER_TRACKIO_IDLE_S": "0"}  # the copying process: run finished
    result = subprocess.run(
        [sys.executable, "-m", "mytracker.cli", "copy", store_uri, f"sqlite:///{target}"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr
    copied = MlflowClient(f"sqlite:///{target}")
    experiment = copied.get_experiment_by_name("tocopy")
    run = copied.get_run(run_id)
    assert run.info.experiment_id == experiment.experiment_id
    assert run.info.status == "FINISHED" and run.info.run_name == "copied"
    assert run.data.params["optimizer"] == "adam"
    source = MlflowClient(store_uri)
    for key in ("loss", "step", "system/cpu/percent"):
        assert [(m.step, m.value, m.timestamp) for m in copied.get_metric_history(run_id, key)] == [
            (m.step, m.value, m.timestamp) for m in source.get_metric_history(run_id, key)
        ]


def test_mlflow_writes_to_a_trackio_run_and_trackio_still_reads_it(trackio_home, unique_name):
    from starlette.testclient import TestClient
    from trackio.server import build_starlette_app_only

    home = Path(trackio_home)
    run_id = _run_trackio(home, unique_name, "trackio-made", 3)
    client = MlflowClient(f"trackio://{home}")
    experiment_id = client.get_experiment_by_name(unique_name).experiment_id

    # Writes through MLflow: the first adopts the project (same id) and records the run.
    client.log_metric(run_id, "val/acc", 0.9, step=3)
    client.log_param(run_id, "batch_size", 32)
    client.set_tag(run_id, "reviewed", "yes")
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        client.log_param(run_id, "lr", 0.5)  # Trackio's config is the run's params
    client.set_terminated(run_id, "FAILED")
    assert client.get_experiment_by_name(unique_name).experiment_id == experiment_id
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.info.experiment_id == experiment_id
    assert run.data.params["batch_size"] == "32" and run.data.params["lr"] == "0.1"
    assert run.data.metrics["val/acc"] == 0.9 and run.data.metrics["loss"] == pytest.approx(1 / 3)
    assert run.data.tags["reviewed"] == "yes"
    new_run = client.create_run(experiment_id, run_name="mlflow-made")
    assert len(client.search_runs([experiment_id])) == 2

    # Trackio's own reader and dashboard still read the project, Trackio's values unchanged.
    app, _ = build_starlette_app_only()
    dashboard = TestClient(app)
    runs = dashboard.post("/api/get_runs_for_project", json={"project": unique_name}).json()["data"]
    assert {r["name"] for r in runs} == {"trackio-made", "mlflow-made"}
    logs = dashboard.post(
        "/api/get_logs", json={"project": unique_name, "run": "trackio-made", "run_id": run_id}
    ).json()["data"]
    assert [row["loss"] for row in logs if "loss" in row] == [1.0, 0.5, 1 / 3]
    assert [(row["step"], row["val/acc"]) for row in logs if "val/acc" in row] == [(3, 0.9)]
    configs = dashboard.post("/api/get_run_configs", json={"project": unique_name}).json()["data"]
    config = configs[run_id]
    assert config["lr"] == 0.1 and config["layers"] == [64, 32]  # still Trackio's typed values
    assert config["batch_size"] == "32" and config["_mlflow_status"] == "FAILED"
    assert new_run.info.run_id in configs

    # And Trackio can keep logging to its project after MLflow adopted it.
    later = _run_trackio(home, unique_name, "trackio-later", 2)
    assert client.get_run(later).data.tags["mytracker.origin"] == "trackio"
    assert len(client.search_runs([experiment_id])) == 3


def test_ids_when_a_trackio_project_is_renamed_or_deleted(data_dir, store_uri):
    client = MlflowClient(store_uri)
    run_id = _run_trackio(data_dir, "first", "r", 1)
    first_id = client.get_experiment_by_name("first").experiment_id
    # Renamed by moving its file (Trackio's own rename): a new name, so a new id; the run's
    # id is Trackio's and stays.
    for suffix in ("", "-wal", "-shm"):
        if (data_dir / f"first.db{suffix}").exists():
            (data_dir / f"first.db{suffix}").rename(data_dir / f"second.db{suffix}")
    second = client.get_experiment_by_name("second")
    assert second.experiment_id != first_id
    with pytest.raises(MlflowException, match="No Experiment"):
        client.get_experiment(first_id)
    assert client.get_run(run_id).info.experiment_id == second.experiment_id
    # Renamed or deleted through MLflow: adopted first, so the id stays for good.
    client.rename_experiment(second.experiment_id, "third")
    assert client.get_experiment(second.experiment_id).name == "third"
    client.delete_experiment(second.experiment_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    client.restore_experiment(second.experiment_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    # Deleted by removing its file: gone, as Trackio's own delete leaves it.
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"second.db{suffix}").unlink(missing_ok=True)
    assert client.get_experiment_by_name("third") is None
    assert "third" not in {e.name for e in client.search_experiments()}


@pytest.mark.heavy  # starts MLflow's tracking server
def test_mlflow_ui_lists_and_plots_trackio_runs_through_mytracker_server(data_dir, tmp_path):
    import requests

    from servers import mytracker_server

    run_id = _run_trackio(data_dir, "served", "trackio-served", 5)
    log_path = tmp_path / "server.log"
    with mytracker_server(data_dir, workers=1, log_path=log_path) as url:
        api = f"{url}/ajax-api/2.0/mlflow"  # what MLflow's UI calls
        experiments = requests.post(f"{api}/experiments/search", json={"max_results": 100}).json()
        served = next(e for e in experiments["experiments"] if e["name"] == "served")
        experiment_id = served["experiment_id"]
        runs = requests.post(
            f"{api}/runs/search", json={"experiment_ids": [experiment_id], "max_results": 100}
        ).json()["runs"]
        assert [r["info"]["run_id"] for r in runs] == [run_id]
        assert runs[0]["info"]["run_name"] == "trackio-served"
        assert {m["key"] for m in runs[0]["data"]["metrics"]} >= {"loss", "step"}
        datasets = requests.post(
            f"{api}/experiments/search-datasets", json={"experiment_ids": [experiment_id]}
        )
        assert datasets.status_code == 200
        plotted = requests.get(
            f"{api}/metrics/get-history-bulk-interval",
            params={"run_ids": run_id, "metric_key": "loss", "max_results": 320},
        ).json()["metrics"]
        assert [(m["step"], m["value"]) for m in plotted] == [(s, 1.0 / (s + 1)) for s in range(5)]
        history = requests.get(
            f"{url}/api/2.0/mlflow/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"}
        ).json()["metrics"]
        assert len(history) == 5
    assert " 500 " not in log_path.read_text(errors="replace")


def test_an_index_from_before_lists_trackio_projects_it_recorded_as_empty(data_dir, store_uri):
    lister = (
        "import sys, mlflow; client = mlflow.MlflowClient(sys.argv[1]); "
        "print([e.name for e in client.search_experiments()])"
    )

    def names_in_a_new_process():
        listed = subprocess.run(
            [sys.executable, "-c", lister, store_uri], capture_output=True, text=True, timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.strip()

    _run_trackio(data_dir, "older", "r", 1)
    time.sleep(0.2)  # a file changed in the last 0.1 s is never recorded (see _catalog)
    assert "older" in names_in_a_new_process()
    # The directory index as the previous version left it: the file holds nothing for MLflow.
    index = sqlite3.connect(data_dir / ".mytracker-catalog.sqlite", isolation_level=None)
    index.execute("UPDATE files SET experiment = NULL, experiment_id = NULL, experiment_name = NULL")
    index.execute("DELETE FROM ids")
    index.execute("PRAGMA user_version = 0")
    index.close()
    assert "older" in names_in_a_new_process()


def test_history_pages_through_rows_trackio_stamped_alike(data_dir, store_uri):
    from mytracker.store._store import TrackioStore

    # Trackio stamps each flush's rows with one microsecond timestamp: pages end inside them.
    run_id = _run_trackio(data_dir, "pages", "paged", 50)
    conn = sqlite3.connect(data_dir / "pages.db")
    stamps = conn.execute("SELECT count(DISTINCT timestamp) FROM metrics WHERE run_id = ?", (run_id,))
    assert stamps.fetchone()[0] < 50
    store = TrackioStore(store_uri)
    steps, token = [], None
    for _ in range(20):  # 8 pages; more means pages repeat points
        page = store.get_metric_history(run_id, "loss", max_results=7, page_token=token)
        steps += [m.step for m in page]
        token = page.token
        if not token:
            break
    assert steps == list(range(50)) and token is None


LOGGER = """
import sys, trackio
trackio.init(project="latest", name="r", resume="allow", auto_log_cpu=False, auto_log_gpu=False)
for step, values in eval(sys.argv[1]):
    trackio.log(values, step=step)
trackio.finish()
"""


def test_latest_metrics_of_a_trackio_run_follow_mlflows_rule(data_dir, store_uri):
    """MLflow's latest value of a key is its point with the largest (step, timestamp, value):
    for a Trackio run read from the rows largest step first, and read again once Trackio
    writes more (the rows are read again only when the file changed)."""
    def log(points) -> None:
        subprocess.run([sys.executable, "-c", LOGGER, repr(points)], check=True, timeout=180,
                       env={**os.environ, "TRACKIO_DIR": str(data_dir)}, capture_output=True)

    def expected(run_id) -> dict:
        latest = {}
        for key in client.get_run(run_id).data.metrics:
            points = client.get_metric_history(run_id, key)
            latest[key] = max(points, key=lambda m: (m.step, m.timestamp, m.value)).value
        return latest

    client = MlflowClient(store_uri)
    # Repeated and out-of-order steps, a key only at the first step, one only at the last.
    log([(0, {"loss": 1.0, "early": 7.0}), (2, {"loss": 0.5}), (2, {"loss": 0.75}),
         (5, {"loss": 0.25, "late": 3.0}), (3, {"loss": 0.1}), (5, {"loss": 0.2})])
    experiment = client.get_experiment_by_name("latest")
    (run,) = client.search_runs([experiment.experiment_id])
    run_id = run.info.run_id
    assert run.data.metrics == expected(run_id)
    assert list(run.data.metrics) == ["loss", "early", "late"]  # as first logged
    assert (run.data.metrics["early"], run.data.metrics["late"]) == (7.0, 3.0)
    assert run.data.metrics["loss"] in (0.2, 0.25)  # step 5's: by timestamp, then by value
    assert client.get_run(run_id).data.metrics == run.data.metrics  # unchanged file: as read
    log([(4, {"early": 9.0}), (9, {"loss": 0.05})])  # Trackio adds rows to the same run
    assert client.get_run(run_id).data.metrics == expected(run_id)
    assert client.get_run(run_id).data.metrics == {"loss": 0.05, "early": 9.0, "late": 3.0}
    (again,) = client.search_runs([experiment.experiment_id])
    assert again.data.metrics == {"loss": 0.05, "early": 9.0, "late": 3.0}
