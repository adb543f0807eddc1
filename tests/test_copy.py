"""`mytracker copy` / `mytracker import`: MLflow history into Trackio and back out, unchanged.

The source is a real MLflow SQLite store written through MlflowClient (plus one 100,000-point
history written with MLflow's own SQLAlchemy models, because MLflow's log_batch needs ~20 s for
it). Every comparison reads both sides back through MlflowClient, field by field.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, ViewType
from mlflow.exceptions import MlflowException

from mytracker._compat import sql_write_session
from mytracker._copy import Progress, copy_store
from mytracker.cli import main

BASE_MS = 1_700_000_000_000
MAX_DOUBLE = 1.7976931348623157e308
BIG_POINTS = 100_000
UNICODE_KEYS = ["température", "loss/训练", "métrique α-β.1 x"]


# --- stores ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory):
    """One empty MLflow SQLite database (MLflow's migrations take ~5 s); tests copy the file."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    directory = tmp_path_factory.mktemp("template")
    path = directory / "empty.db"
    SqlAlchemyStore(f"sqlite:///{path}", str(directory / "artifacts")).engine.dispose()
    return path


def new_sqlite_store(empty_db: Path, directory: Path, name: str) -> str:
    """A new MLflow SQLite store: the empty database, its default experiment's artifacts kept
    in `directory` (as `SqlAlchemyStore(uri, directory / "artifacts")` would create it)."""
    path = directory / f"{name}.db"
    shutil.copy(empty_db, path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(directory / f"{name}-artifacts" / "0"),),
        )
    return f"sqlite:///{path}"


@pytest.fixture
def fresh_sqlite(empty_mlflow_db, tmp_path):
    return lambda name: new_sqlite_store(empty_mlflow_db, tmp_path, name)


@pytest.fixture(autouse=True)
def _no_download_bars(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _dataset(i: int) -> DatasetInput:
    dataset = Dataset(
        name=f"data-{i % 3}", digest=f"d{i % 3:07d}", source_type="local",
        source=f'{{"uri": "/data/{i % 3}.csv"}}', schema='{"a": "long"}', profile='{"rows": 3}',
    )
    return DatasetInput(dataset, [InputTag("mlflow.data.context", "training" if i % 2 else "eval")])


def _log_run(client, experiment_id, i, parent_id=None, status="FINISHED", deleted=False):
    tags = {"team": "vision", "note": f"run {i} ✓", "mlflow.user": f"user-{i % 3}"}
    if parent_id:
        tags["mlflow.parentRunId"] = parent_id
    run = client.create_run(
        experiment_id, start_time=BASE_MS + i * 1000, tags=tags, run_name=f"run-{i}-ñ"
    )
    run_id = run.info.run_id
    metrics = []
    for step in range(12):
        ts = BASE_MS + i * 1000 + step * 10
        metrics.append(Metric("loss", 1.0 / (step + 1), ts, step))
        metrics.append(Metric(UNICODE_KEYS[i % 3], step * 0.5, ts, step))
    # Non-finite values, as logged by a diverging model.
    metrics += [
        Metric("loss", math.nan, BASE_MS + i * 1000 + 200, 12),
        Metric("grad_norm", math.inf, BASE_MS + i * 1000 + 5, 0),
        Metric("grad_norm", -math.inf, BASE_MS + i * 1000 + 6, 1),
        Metric("grad_norm", math.nan, BASE_MS + i * 1000 + 7, 2),
        Metric("system/cpu", 12.5, BASE_MS + i * 1000 + 8, 0),
    ]
    params = [Param("lr", str(0.001 * (i + 1))), Param("optimizer", "adam"), Param("ünï", "ß")]
    client.log_batch(run_id, metrics=metrics, params=params)
    if i % 2 == 0:
        client.log_inputs(run_id, [_dataset(i)])
    if i % 10 == 0:
        client.log_text(run_id, f"notes for run {i}\n", "notes/readme.md")
        client.log_dict(run_id, {"i": i, "ok": True}, "config/params.json")
    if status != "RUNNING":
        client.set_terminated(run_id, status=status, end_time=BASE_MS + i * 1000 + 900)
    if deleted:
        client.delete_run(run_id)
    return run_id


def _log_big_history(store_uri: str, run_id: str) -> None:
    """100,000 points for one key, inserted with MLflow's own models in one transaction."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import insert

    store = SqlAlchemyStore(store_uri, "unused")
    rows = [
        {"run_uuid": run_id, "key": "big/train_loss", "value": 1.0 / (step + 1),
         "timestamp": BASE_MS + step, "step": step, "is_nan": False}
        for step in range(BIG_POINTS)
    ]
    last = rows[-1]
    with sql_write_session(store) as session:
        session.execute(insert(SqlMetric), rows)
        session.execute(insert(SqlLatestMetric), [last])
    store.engine.dispose()


@pytest.fixture(scope="session")
def source_uri(tmp_path_factory, empty_mlflow_db):
    """An MLflow SQLite store: 4 experiments (one deleted), 100+ runs, nested runs, failed,
    killed, running and deleted runs, NaN/±inf values, unicode keys, datasets, artifacts and one
    100,000-point history."""
    directory = tmp_path_factory.mktemp("source")
    uri = new_sqlite_store(empty_mlflow_db, directory, "mlflow")
    client = MlflowClient(uri)
    artifacts = directory / "artifacts"
    experiments = {
        name: client.create_experiment(
            name, artifact_location=str(artifacts / name), tags={"owner": "ml-team", "ü": "1"}
        )
        for name in ("vision", "nlp-ünïcode", "archive")
    }
    i = 0
    for name in ("vision", "nlp-ünïcode"):
        for n in range(36):
            status = ("FINISHED", "FAILED", "KILLED", "RUNNING")[n % 4]
            parent = _log_run(client, experiments[name], i, status=status, deleted=n == 7)
            i += 1
            if n % 9 == 0:  # a sweep: two children, one with its own child
                child = _log_run(client, experiments[name], i, parent_id=parent)
                _log_run(client, experiments[name], i + 1, parent_id=parent)
                _log_run(client, experiments[name], i + 2, parent_id=child)
                i += 3
    for _ in range(3):
        _log_run(client, experiments["archive"], i)
        i += 1
    client.delete_experiment(experiments["archive"])
    big = _log_run(client, "0", i)
    _log_big_history(uri, big)
    client.log_artifact(big, _binary_file(directory), "blobs")
    return uri


def _binary_file(directory: Path) -> str:
    path = directory / "weights.bin"
    path.write_bytes(os.urandom(300_000))
    return str(path)


# --- what a user would compare --------------------------------------------------------------


def _value(v: float):
    """A value as MLflow's SQL stores answer it: the file store (./mlruns) keeps infinities
    exact, MLflow's SQLite store and the Trackio store answer the largest double."""
    if math.isinf(v):
        return MAX_DOUBLE if v > 0 else -MAX_DOUBLE
    return "nan" if math.isnan(v) else v


def snapshot(uri: str, tmp_path: Path | None = None) -> dict:
    """Everything MlflowClient shows of a store, keyed by experiment name and run id; without
    `tmp_path`, everything but metric histories and artifacts (the slow parts to read)."""
    client = MlflowClient(uri)
    experiments, runs = {}, {}
    for e in client.search_experiments(view_type=ViewType.ALL):
        experiments[e.name] = {"tags": e.tags, "lifecycle_stage": e.lifecycle_stage}
        for r in client.search_runs([e.experiment_id], run_view_type=ViewType.ALL, max_results=50000):
            run_id = r.info.run_id
            runs[run_id] = {
                "experiment": e.name,
                "info": (r.info.run_name, r.info.status, r.info.start_time, r.info.end_time,
                         r.info.lifecycle_stage, r.info.user_id),
                "params": r.data.params,
                "tags": r.data.tags,
                "latest": {m.key: (_value(m.value), m.timestamp, m.step)
                           for m in r.data._metric_objs},
                "inputs": sorted(
                    (d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source,
                     d.dataset.schema, d.dataset.profile,
                     tuple(sorted((t.key, t.value) for t in d.tags)))
                    for d in r.inputs.dataset_inputs
                ),
            }
            if tmp_path is not None:
                runs[run_id]["history"] = {
                    key: sorted((m.step, m.timestamp, _value(m.value))
                                for m in client.get_metric_history(run_id, key))
                    for key in r.data.metrics
                }
                runs[run_id]["artifacts"] = _artifacts(client, run_id, tmp_path / run_id)
    return {"experiments": experiments, "runs": runs}


def _artifacts(client, run_id, local_dir, path=None) -> dict:
    found = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            found.update(_artifacts(client, run_id, local_dir, info.path))
        else:
            local = client.download_artifacts(run_id, info.path, str(local_dir))
            found[info.path] = Path(local).read_bytes()
    return found


def trackio_rows(data_dir: Path) -> int:
    """Rows in Trackio's own metrics tables, read straight from the project files."""
    total = 0
    for db in data_dir.glob("*.db"):
        with sqlite3.connect(db) as conn:
            total += conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
            total += conn.execute("SELECT count(*) FROM system_metrics").fetchone()[0]
    return total


def trackio_points(data_dir: Path) -> Counter:
    """Every metric point in the Trackio files, as (run_id, step, timestamp, key, value)."""
    points = Counter()
    for db in data_dir.glob("*.db"):
        with sqlite3.connect(db) as conn:
            for table in ("metrics", "system_metrics"):
                for run_id, timestamp, text in conn.execute(
                    f"SELECT run_id, timestamp, metrics FROM {table}"
                ):
                    for key, value in json.loads(text).items():
                        points[(run_id, table, timestamp, key, json.dumps(value))] += 1
    return points


def files_under(directory: Path) -> dict:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def mlflow_tables(uri: str) -> dict:
    """The rows of MLflow's SQLite tables that hold runs (dataset links by name and digest)."""
    with sqlite3.connect(uri[len("sqlite:///"):]) as conn:
        def rows(sql):
            return sorted(conn.execute(sql).fetchall(), key=repr)

        return {
            "runs": rows("SELECT run_uuid, name, status, start_time, end_time, lifecycle_stage, "
                         "user_id, experiment_id FROM runs"),
            "params": rows("SELECT * FROM params"),
            "tags": rows("SELECT * FROM tags"),
            "metrics": rows("SELECT * FROM metrics"),
            "latest_metrics": rows("SELECT * FROM latest_metrics"),
            "inputs": rows(
                "SELECT i.destination_id, d.name, d.digest, d.dataset_source, t.name, t.value "
                "FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
                "LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid"
            ),
        }


@pytest.fixture(scope="session")
def source_snapshot(source_uri, tmp_path_factory):
    return snapshot(source_uri, tmp_path_factory.mktemp("source-snapshot"))


@pytest.fixture(scope="session")
def trackio_copy(source_uri, tmp_path_factory):
    """The source copied once into a Trackio data directory (shared by read-only tests)."""
    data_dir = tmp_path_factory.mktemp("trackio-copy")
    summary = copy_store(source_uri, f"trackio://{data_dir}")
    return data_dir, summary


@pytest.fixture(scope="session")
def back_copy(trackio_copy, empty_mlflow_db, tmp_path_factory):
    """The Trackio copy copied back out into a new MLflow SQLite store."""
    directory = tmp_path_factory.mktemp("back")
    uri = new_sqlite_store(empty_mlflow_db, directory, "back")
    summary = copy_store(f"trackio://{trackio_copy[0]}", uri, artifact_root=str(directory / "art"))
    return uri, summary


# --- round trip -----------------------------------------------------------------------------


def test_source_is_what_the_issue_asks_for(source_snapshot):
    runs = source_snapshot["runs"]
    assert len(runs) >= 100
    assert len(source_snapshot["experiments"]) == 4
    assert sum("mlflow.parentRunId" in r["tags"] for r in runs.values()) >= 20
    assert max(len(h) for r in runs.values() for h in r["history"].values()) == BIG_POINTS
    assert all(any(k in r["history"] for k in UNICODE_KEYS) for r in runs.values())
    assert sum(bool(r["inputs"]) for r in runs.values()) >= 40
    assert sum(bool(r["artifacts"]) for r in runs.values()) >= 9


def test_copy_into_trackio_and_back_equals_the_original(
    source_snapshot, trackio_copy, back_copy, tmp_path
):
    data_dir, summary = trackio_copy
    runs = len(source_snapshot["runs"])
    points = sum(len(h) for r in source_snapshot["runs"].values() for h in r["history"].values())
    assert (summary.experiments, summary.runs_new, summary.runs_updated) == (4, runs, 0)
    assert (summary.metric_points, summary.artifact_files) == (points, 21)
    assert summary.artifact_bytes > 300_000
    assert snapshot(f"trackio://{data_dir}", tmp_path / "t") == source_snapshot

    back_uri, back = back_copy
    assert (back.runs_new, back.metric_points, back.artifact_files) == (runs, points, 21)
    assert snapshot(back_uri, tmp_path / "b") == source_snapshot


def test_infinities_as_each_store_keeps_them(source_snapshot, fresh_sqlite, tmp_path):
    """MLflow's SQLite store keeps +inf as the largest double; the copy carries what the source
    holds. The Trackio store answers as MLflow's does (its own rows keep the infinity), and a copy
    to SQLite holds what MLflow would have written."""
    grad = next(r for r in source_snapshot["runs"].values() if "grad_norm" in r["history"])
    assert [v for *_, v in grad["history"]["grad_norm"]] == [MAX_DOUBLE, -MAX_DOUBLE, "nan"]

    uri = f"trackio://{tmp_path / 'inf'}"
    client = MlflowClient(uri)
    run_id = client.create_run("0").info.run_id
    client.log_batch(run_id, [Metric("x", math.inf, BASE_MS, 0), Metric("x", -math.inf, BASE_MS, 1)])
    assert [m.value for m in client.get_metric_history(run_id, "x")] == [MAX_DOUBLE, -MAX_DOUBLE]
    sqlite_uri = fresh_sqlite("inf")
    copy_store(uri, sqlite_uri, artifact_root=str(tmp_path / "art"))
    values = [m.value for m in MlflowClient(sqlite_uri).get_metric_history(run_id, "x")]
    assert values == [MAX_DOUBLE, -MAX_DOUBLE]
    again = copy_store(uri, sqlite_uri, artifact_root=str(tmp_path / "art"))
    assert (again.runs_unchanged, again.metric_points) == (1, 0)


def test_trackio_shows_the_copied_runs(source_snapshot, trackio_copy):
    """Each experiment is one Trackio project file; Trackio's own tables hold the runs."""
    data_dir, _ = trackio_copy
    names = {}
    for db in data_dir.glob("*.db"):
        with sqlite3.connect(db) as conn:
            names.update(conn.execute("SELECT run_id, run_name FROM configs"))
    # A deleted run stays listed in Trackio (it has no hidden state), under a name that says so.
    assert {
        i: r["info"][0] + (" (deleted)" if r["info"][4] == "deleted" else "")
        for i, r in source_snapshot["runs"].items()
    } == names


# --- idempotency and resume -----------------------------------------------------------------


def test_copying_again_changes_nothing(source_uri, source_snapshot, trackio_copy, back_copy):
    data_dir, _ = trackio_copy
    before = trackio_points(data_dir), trackio_rows(data_dir), files_under(data_dir / "mlflow-artifacts")

    again = copy_store(source_uri, f"trackio://{data_dir}")
    assert (again.runs_new, again.runs_updated, again.metric_points, again.artifact_files) == (0, 0, 0, 0)
    assert again.runs_unchanged == len(source_snapshot["runs"])
    assert again.experiments_created == 0
    verified = copy_store(source_uri, f"trackio://{data_dir}", verify=True)
    assert (verified.runs_new, verified.runs_updated, verified.metric_points) == (0, 0, 0)
    after = trackio_points(data_dir), trackio_rows(data_dir), files_under(data_dir / "mlflow-artifacts")
    assert after == before

    back_uri, _ = back_copy
    tables = mlflow_tables(back_uri)
    back_again = copy_store(f"trackio://{data_dir}", back_uri, verify=True)
    assert (back_again.runs_new, back_again.runs_updated, back_again.metric_points) == (0, 0, 0)
    assert mlflow_tables(back_uri) == tables


def test_new_history_in_the_source_is_added(source_uri, tmp_path, fresh_sqlite):
    source = fresh_sqlite("growing")
    shutil.copy(source_uri[len("sqlite:///"):], source[len("sqlite:///"):])
    data_dir = tmp_path / "trackio"
    copy_store(source, f"trackio://{data_dir}")

    client = MlflowClient(source)
    running = client.search_runs(
        [client.get_experiment_by_name("vision").experiment_id], "attributes.status = 'RUNNING'"
    )[0]
    client.log_batch(running.info.run_id, [Metric("loss", 0.01, BASE_MS + 10**7, 99)])
    client.set_terminated(running.info.run_id, "FINISHED", BASE_MS + 10**7)
    new_run = client.create_run("0", start_time=BASE_MS, run_name="late").info.run_id
    client.log_metric(new_run, "loss", 2.0, BASE_MS, step=0)

    again = copy_store(source, f"trackio://{data_dir}")
    assert (again.runs_new, again.runs_updated, again.metric_points) == (1, 1, 2)
    assert snapshot(f"trackio://{data_dir}") == snapshot(source)
    history = MlflowClient(f"trackio://{data_dir}").get_metric_history(running.info.run_id, "loss")
    assert [m.step for m in history][-1] == 99 and len(history) == 14


class _StopAfter(Progress):
    """Ctrl-C after a number of metric batches (raised where the copy is writing)."""

    def __init__(self, batches: int):
        super().__init__(enabled=False)
        self.left = batches

    def points(self, count: int) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


# The 100,029 points of the first run (experiment 0) are 101 batches, then one batch per run.
@pytest.mark.parametrize(("batches", "runs_before"), [(50, 0), (170, 69)])
def test_interrupted_copy_resumes_to_a_clean_copy(
    source_uri, trackio_copy, tmp_path, batches, runs_before
):
    data_dir = tmp_path / "trackio"
    with pytest.raises(KeyboardInterrupt):
        copy_store(source_uri, f"trackio://{data_dir}", progress=_StopAfter(batches))
    # Each run is all there, or not there at all.
    assert len(snapshot(f"trackio://{data_dir}")["runs"]) == runs_before

    resumed = copy_store(source_uri, f"trackio://{data_dir}")
    assert resumed.runs_new == 100 - runs_before
    clean_dir, _ = trackio_copy
    assert snapshot(f"trackio://{data_dir}") == snapshot(f"trackio://{clean_dir}")
    assert trackio_points(data_dir) == trackio_points(clean_dir)
    assert trackio_rows(data_dir) == trackio_rows(clean_dir)
    assert files_under(data_dir / "mlflow-artifacts") == files_under(clean_dir / "mlflow-artifacts")


def test_killed_cli_copy_resumes(trackio_copy, back_copy, tmp_path, fresh_sqlite):
    """`kill -9` in the middle of `mytracker copy` out of Trackio into SQLite, then the same
    command again: the result equals the uninterrupted copy."""
    destination = fresh_sqlite("killed")
    path = destination[len("sqlite:///"):]
    command = ["copy", f"trackio://{trackio_copy[0]}", destination, "--no-progress",
               "--artifact-root", str(tmp_path / "art")]
    process = subprocess.Popen(
        [sys.executable, "-m", "mytracker.cli", *command],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with sqlite3.connect(path, timeout=30) as conn:
                if conn.execute("SELECT count(*) FROM runs").fetchone()[0] >= 30:
                    break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the copy ended before it could be killed"
    assert 30 <= len(mlflow_tables(destination)["runs"]) < 100

    assert main(command) == 0
    assert mlflow_tables(destination) == mlflow_tables(back_copy[0])
    assert snapshot(destination) == snapshot(back_copy[0])


def test_ctrl_c_prints_how_to_resume(source_uri, tmp_path, monkeypatch, capsys):
    import mytracker._copy

    monkeypatch.setattr(mytracker._copy, "Progress", lambda enabled=None: _StopAfter(5))
    code = main(["import", source_uri, "--dir", str(tmp_path / "t"), "--no-progress"])
    assert code == 130
    assert "run the same command again to resume" in capsys.readouterr().err


# --- other sources --------------------------------------------------------------------------


def _log_small_history(tracking_uri: str, artifact_dir: Path | None = None) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    try:
        if artifact_dir is None:
            experiment_id = mlflow.create_experiment("small ü")
        else:
            experiment_id = mlflow.create_experiment("small ü", artifact_location=str(artifact_dir))
        with mlflow.start_run(experiment_id=experiment_id, run_name="parent"):
            mlflow.log_params({"lr": 0.1, "batch": 32})
            run_id = mlflow.active_run().info.run_id
            MlflowClient().log_batch(  # one request for the whole history
                run_id, [Metric("loss", 1 / (s + 1), BASE_MS + s, s) for s in range(50)]
            )
            mlflow.log_metric("température", math.nan, step=50)
            mlflow.set_tag("team", "nlp")
            mlflow.log_text("hello", "notes/hello.txt")
            with mlflow.start_run(run_name="child", nested=True):
                mlflow.log_metric("acc", 0.9)
                MlflowClient().log_inputs(mlflow.active_run().info.run_id, [_dataset(0)])
        with mlflow.start_run(experiment_id=experiment_id, run_name="failed"):
            mlflow.log_metric("loss", math.inf)
            mlflow.end_run("FAILED")
    finally:
        mlflow.set_tracking_uri(None)


def test_copy_from_an_mlruns_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlruns = tmp_path / "mlruns"
    _log_small_history(mlruns.as_uri())
    data_dir = tmp_path / "trackio"
    assert main(["import", mlruns.as_uri(), "--dir", str(data_dir), "--no-progress"]) == 0
    expected = snapshot(mlruns.as_uri(), tmp_path / "s")
    assert len(expected["runs"]) == 3
    assert snapshot(f"trackio://{data_dir}", tmp_path / "t") == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path, empty_mlflow_db):
    backend = tmp_path / "server.db"
    shutil.copy(empty_mlflow_db, backend)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{backend}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.heavy
def test_copy_from_a_tracking_server(mlflow_server, tmp_path):
    _log_small_history(mlflow_server)
    data_dir = tmp_path / "trackio"
    summary = copy_store(mlflow_server, f"trackio://{data_dir}")
    assert (summary.runs_new, summary.artifact_files) == (3, 1)
    assert snapshot(f"trackio://{data_dir}", tmp_path / "t") == snapshot(mlflow_server, tmp_path / "s")


def test_only_the_named_experiments(source_uri, source_snapshot, tmp_path):
    data_dir = tmp_path / "trackio"
    assert main(["copy", source_uri, f"trackio://{data_dir}", "--experiment", "nlp-ünïcode",
                 "--no-progress"]) == 0
    copied = snapshot(f"trackio://{data_dir}", tmp_path / "t")["runs"]
    expected = {i for i, r in source_snapshot["runs"].items() if r["experiment"] == "nlp-ünïcode"}
    assert set(copied) == expected


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("http://127.0.0.1:{port}", "is unreachable"),
        ("sqlite:///{tmp}/missing.db", "no SQLite database"),
        ("file://{tmp}/no-mlruns", "no directory"),
        ("s3://bucket/mlruns", "Unknown source"),
        ("trackio://{tmp}/nothing", "no Trackio data directory"),
    ],
)
def test_bad_sources_get_a_clear_error(source, message, tmp_path, capsys):
    source = source.format(port=_free_port(), tmp=tmp_path)
    assert main(["copy", source, f"trackio://{tmp_path / 'd'}", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "no-mlruns").exists()


def test_import_takes_the_path_of_mlflows_default_sqlite_file(
    fresh_sqlite, tmp_path, capsys, monkeypatch
):
    source = fresh_sqlite("mlflow")  # sqlite:///<tmp>/mlflow.db, what MLflow 3 makes by default
    client = MlflowClient(source)
    with_run = client.create_experiment("from-sqlite")
    run_id = client.create_run(with_run, run_name="imported").info.run_id
    client.log_metric(run_id, "loss", 0.5, step=1)
    monkeypatch.chdir(Path(source.removeprefix("sqlite:///")).parent)
    assert main(["import", "mlflow.db", "--dir", str(tmp_path / "d"), "--no-progress"]) == 0
    copied = MlflowClient(f"trackio://{tmp_path / 'd'}").get_run(run_id)
    assert copied.info.run_name == "imported" and copied.data.metrics == {"loss": 0.5}

    Path("notes.db").write_text("not a database")
    assert main(["import", "notes.db", "--dir", str(tmp_path / "d"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "is a file but no SQLite database" in err and "Traceback" not in err


def test_bad_destination_and_unknown_experiment(source_uri, tmp_path, capsys):
    assert main(["copy", source_uri, "file:///tmp/x", "--no-progress"]) == 1
    assert "Unsupported destination" in capsys.readouterr().err
    with pytest.raises(MlflowException, match="No experiment named 'nope'"):
        copy_store(source_uri, f"trackio://{tmp_path}", ["nope"])
