"""Nothing lost, nothing let in: crashes, concurrent writers, hostile input, damaged storage."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from mytracker.store import build_store


def _python(script: str, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def _dump(data_dir: Path) -> dict[str, list[str]]:
    """Every row of every database in the data directory, as text."""
    return {
        path.name: list(sqlite3.connect(path).iterdump()) for path in sorted(data_dir.glob("*.db"))
    }


# --- crashes ------------------------------------------------------------------------------------

TRAINER = """
import sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("crash")
run = mlflow.start_run()
print(run.info.run_id, flush=True)
step = 0
while True:
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)  # synchronous: returned = stored
    print(step, flush=True)
    step += 1
"""


def test_sigkill_loses_no_point_a_synchronous_call_returned_from(store_uri, data_dir):
    proc = _python(TRAINER, store_uri, stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    acknowledged = []
    while len(acknowledged) < 300:
        acknowledged.append(int(proc.stdout.readline()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    client = MlflowClient(store_uri)
    stored = {m.step for m in client.get_metric_history(run_id, "loss")}
    assert set(acknowledged) <= stored
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody could end it
    assert sqlite3.connect(data_dir / "crash.db").execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # The documented way to close such runs: by process liveness, on this host.
    out = subprocess.run(
        [sys.executable, "-m", "mytracker.cli", "close-dead-runs", "--dir", str(data_dir)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert f"closed run {run_id} in experiment 'crash'" in out
    run = client.get_run(run_id)
    last = max(m.timestamp for m in client.get_metric_history(run_id, "loss"))
    assert (run.info.status, run.info.end_time) == ("KILLED", last)


def test_close_dead_runs_leaves_live_runs_alone(tracking):
    mlflow.set_experiment("alive")
    with mlflow.start_run() as run:
        closed = build_store(tracking).close_dead_runs()
        assert closed == []
    assert MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"


ASYNC_WRITER = """
import sys, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("async-exit")
run = mlflow.start_run()
print(run.info.run_id, flush=True)
for step in range(500):
    mlflow.log_metric("m", float(step), step=step, synchronous=False)
if sys.argv[2] == "end_run":
    mlflow.end_run()
# otherwise: a normal interpreter exit with the run still open
"""


@pytest.mark.parametrize("how", ["end_run", "exit"])
def test_async_points_are_flushed(store_uri, how):
    proc = _python(ASYNC_WRITER, store_uri, how, stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    assert proc.wait(timeout=120) == 0
    history = MlflowClient(store_uri).get_metric_history(run_id, "m")
    assert sorted(m.step for m in history) == list(range(500))


def test_written_points_reach_the_database_file_without_a_commit_paying_for_it(
    tracking, data_dir, tmp_path
):
    # SQLite copies the WAL back into the file (a checkpoint) inside the commit that crosses
    # 1,000 pages. The store's own thread does it shortly after any write instead: a few steps,
    # far below that threshold, are in the main file on their own a moment later.
    mlflow.set_experiment("checkpointed")
    with mlflow.start_run() as run:
        for step in range(10):
            mlflow.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        project = data_dir / "checkpointed.db"
        copy = tmp_path / "main-file-only.db"
        deadline = time.monotonic() + 10
        steps = 0
        while steps < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
            copy.write_bytes(project.read_bytes())  # the file alone, without its -wal
            with contextlib.closing(sqlite3.connect(copy)) as conn:
                steps = conn.execute(
                    "SELECT count(DISTINCT step) FROM metrics WHERE run_name = ?",
                    (run.info.run_name,),
                ).fetchone()[0]
    assert steps == 10
    assert (data_dir / "checkpointed.db-wal").exists()  # the writer's connection is still open


# --- concurrency ----------------------------------------------------------------------------------

BATCH_WRITER = """
import sys, mlflow
from mlflow.entities import Metric
client = mlflow.MlflowClient(sys.argv[1])
run_id = client.create_run(sys.argv[2]).info.run_id
print(run_id, flush=True)
for batch in range(40):
    client.log_batch(run_id, metrics=[
        Metric("loss", float(step), 1_700_000_000_000 + step, step)
        for step in range(batch * 500, batch * 500 + 500)
    ])
"""

TRACKIO_WRITER = """
import trackio
trackio.init(project="stress", name="native-trackio-run")
for step in range(300):
    trackio.log({"native": float(step)})
trackio.finish()
"""

DASHBOARD_READER = """
import sys, time
from trackio.sqlite_storage import SQLiteStorage
deadline = time.time() + float(sys.argv[1])
reads = 0
while time.time() < deadline:
    for record in SQLiteStorage.get_run_records("stress"):
        SQLiteStorage.get_logs("stress", record["name"], run_id=record["id"])
    reads += 1
print(reads)
"""


@pytest.mark.heavy
def test_eight_writers_trackio_writer_and_dashboard_reader(store_uri, data_dir):
    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment("stress")
    env = {"TRACKIO_DIR": str(data_dir)}  # Trackio's own writer and reader on the same files
    reader = _python(DASHBOARD_READER, "20", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    native = _python(TRACKIO_WRITER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    writers = [
        _python(BATCH_WRITER, store_uri, experiment_id, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    results = [w.communicate(timeout=600) for w in writers]
    assert [w.returncode for w in writers] == [0] * 8, [err for _, err in results]
    assert "locked" not in "".join(err for _, err in results)
    _, native_err = native.communicate(timeout=300)
    assert native.returncode == 0, native_err
    reads, reader_err = reader.communicate(timeout=300)
    assert reader.returncode == 0 and int(reads) > 0, reader_err

    for out, _ in results:
        history = client.get_metric_history(out.strip(), "loss")
        assert len(history) == 20_000
        assert sorted(m.step for m in history) == list(range(20_000))  # none lost, none doubled
    conn = sqlite3.connect(data_dir / "stress.db")
    native_rows = conn.execute(
        "SELECT metrics FROM metrics WHERE run_name = 'native-trackio-run' ORDER BY id"
    ).fetchall()
    assert [json.loads(row)["native"] for (row,) in native_rows] == [float(s) for s in range(300)]


def test_a_stuck_lock_becomes_a_clear_error(store_uri, data_dir):
    client = MlflowClient(store_uri)
    run_id = client.create_run(client.create_experiment("stuck")).info.run_id
    holder = sqlite3.connect(data_dir / "stuck.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding a write transaction open
    try:
        proc = _python(
            """
            import sys, mlflow
            try:
                mlflow.MlflowClient(sys.argv[1]).log_metric(sys.argv[2], "m", 1.0)
            except mlflow.exceptions.MlflowException as e:
                print("MlflowException:", e.message)
            """,
            store_uri, run_id, env={"MYTRACKER_LOCK_TIMEOUT": "1"}, stdout=subprocess.PIPE, text=True,
        )
        out, _ = proc.communicate(timeout=60)
    finally:
        holder.execute("ROLLBACK")
    assert "MlflowException:" in out and "stayed locked by another writer" in out
    assert "stuck.db" in out
    client.log_metric(run_id, "m", 1.0)  # and once released, writing works again


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_is_refused_and_changes_nothing(store_uri, data_dir):
    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment("guarded")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "lr", "0.1")
    deleted = client.create_run(experiment_id).info.run_id
    client.delete_run(deleted)
    before = _dump(data_dir)

    bad_calls = {
        "metric key": lambda: client.log_metric(run_id, "a//b", 1.0),
        "metric key escaping": lambda: client.log_metric(run_id, "../../etc", 1.0),
        "tag key": lambda: client.set_tag(run_id, "bad\x00key", "v"),
        "long tag key": lambda: client.set_tag(run_id, "k" * 251, "v"),
        "long param key": lambda: client.log_param(run_id, "p" * 251, "v"),
        "non-numeric metric": lambda: client.log_batch(run_id, metrics=[Metric("m", "x", 1, 0)]),
        "negative timestamp": lambda: client.log_batch(run_id, metrics=[Metric("m", 1.0, -1, 0)]),
        "timestamp past year 9999": lambda: client.log_metric(run_id, "m", 1.0, timestamp=2**62),
        "param changed": lambda: client.log_param(run_id, "lr", "0.2"),
        "half-bad batch": lambda: client.log_batch(
            run_id, metrics=[Metric("ok", 1.0, 1, 0)], params=[Param("lr", "9")],
            tags=[RunTag("t", "v")],
        ),
        "unknown run": lambda: client.log_metric(uuid.uuid4().hex, "m", 1.0),
        "unknown experiment": lambda: client.create_run("424242"),
        "non-numeric experiment id": lambda: client.get_experiment("1; DROP TABLE x"),
        "deleted run": lambda: client.log_metric(deleted, "m", 1.0),
        "malformed filter": lambda: client.search_runs([experiment_id], "metrics.m >"),
        "injection in order": lambda: client.search_runs(
            [experiment_id], order_by=["attributes.start_time; DROP TABLE mlflow_runs"]
        ),
        "empty experiment name": lambda: client.create_experiment(""),
        "too long experiment name": lambda: client.create_experiment("x" * 501),
        "duplicate experiment": lambda: client.create_experiment("guarded"),
    }
    for label, call in bad_calls.items():
        with pytest.raises(MlflowException) as raised:
            call()
            pytest.fail(f"{label}: no error")
        assert raised.value.error_code in (
            "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"
        ), label
        assert _dump(data_dir) == before, f"{label} changed the database"

    # Keys and values that look like SQL are only ever keys and values (as in MLflow's store).
    assert client.search_runs([experiment_id], "params.lr = '0.1'' OR ''1''=''1'") == []
    assert client.search_runs([experiment_id], "params.`lr') OR 1=1 --` = 'x'") == []
    assert _dump(data_dir) == before


@pytest.mark.parametrize(
    "name", ["a/b", "a\\b", "..", "../../../../tmp/escape", "nul\x00byte", "é实验 ✓", "n" * 500]
)
def test_hostile_experiment_names_stay_inside_the_data_directory(store_uri, data_dir, name):
    client = MlflowClient(store_uri)
    experiment_id = client.create_experiment(name)
    assert client.get_experiment_by_name(name).experiment_id == experiment_id
    assert client.get_experiment(experiment_id).name == name
    files = {p.resolve() for p in data_dir.rglob("*") if p.suffix == ".db"}
    assert all(data_dir.resolve() in f.parents for f in files)
    assert all(len(f.name.encode()) < 255 for f in files)
    assert not Path("/tmp/escape.db").exists()


# --- damaged storage --------------------------------------------------------------------------


def _experiment_file(store_uri, data_dir, name) -> Path:
    """An experiment with one run of 200 points, written by another process that has exited
    (so no handle of this one stays open on the file)."""
    proc = _python(
        """
        import sqlite3, sys, mlflow
        client = mlflow.MlflowClient(sys.argv[1])
        run_id = client.create_run(client.create_experiment(sys.argv[2])).info.run_id
        for step in range(200):
            client.log_metric(run_id, "m", float(step), step=step)
        """,
        store_uri, name,
    )
    assert proc.wait(timeout=120) == 0
    path = data_dir / f"{name}.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_truncated_file_gets_a_clear_error_and_is_not_touched(store_uri, data_dir):
    path = _experiment_file(store_uri, data_dir, "truncated")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    before = path.read_bytes()
    store = build_store(store_uri)
    with pytest.raises(MlflowException, match=r"truncated\.db.*(malformed|not a database|not a usable)"):
        experiment = store.get_experiment_by_name("truncated")
        store.search_runs([experiment.experiment_id], "", 1)
        store.get_metric_history(store.search_runs([experiment.experiment_id], "", 1)[0].info.run_id, "m")
    assert path.read_bytes() == before
    assert store.get_experiment("0").name == "Default"  # the rest of the directory still works


def test_a_non_sqlite_file_named_db_is_refused_by_name_and_skipped_in_listings(store_uri, data_dir):
    store = build_store(store_uri)
    (data_dir / "notes.db").write_text("this is not a database\n" * 100)
    with pytest.raises(MlflowException, match=r"notes\.db is not a usable SQLite database"):
        store.get_experiment_by_name("notes")
    assert [e.name for e in store.search_experiments()] == ["Default"]
    assert (data_dir / "notes.db").read_text() == "this is not a database\n" * 100


@contextlib.contextmanager
def _small_mount(path: Path, size: str):
    path.mkdir(parents=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"these tests need to mount a tmpfs (as CI's root can): {result.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_data_directory_gets_a_clear_error(tmp_path):
    with _small_mount(tmp_path / "ro", "32m") as data_dir:
        store_uri = f"trackio://{data_dir}"
        path = _experiment_file(store_uri, data_dir, "frozen")
        subprocess.run(["mount", "-o", "remount,ro", str(data_dir)], check=True)
        before = path.read_bytes()
        proc = _python(
            """
            import sys, mlflow
            client = mlflow.MlflowClient(sys.argv[1])
            try:
                exp = client.get_experiment_by_name("frozen")
                run = client.search_runs([exp.experiment_id])[0]
                client.log_metric(run.info.run_id, "m", 1.0)
                print("no error")
            except mlflow.exceptions.MlflowException as e:
                print("MlflowException:", e.message)
            """,
            store_uri, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        out, err = proc.communicate(timeout=60)
        assert "MlflowException:" in out, out + err
        assert "frozen.db" in out or str(data_dir) in out
        assert "writable" in out
        assert path.read_bytes() == before


def test_full_disk_gets_a_clear_error_and_keeps_what_was_written(tmp_path):
    with _small_mount(tmp_path / "tiny", "2m") as data_dir:
        client = MlflowClient(f"trackio://{data_dir}")
        run_id = client.create_run(client.create_experiment("full")).info.run_id
        logged = 0
        with pytest.raises(MlflowException, match=r"full\.db.*full.*free disk space"):
            for batch in range(10_000):
                client.log_batch(run_id, metrics=[
                    Metric(f"key_{k}", float(batch), 1_700_000_000_000 + batch, batch)
                    for k in range(200)
                ])
                logged += 1
        assert logged > 0
        history = client.get_metric_history(run_id, "key_0")
        assert [m.step for m in history] == list(range(logged))  # every acknowledged batch
        conn = sqlite3.connect(data_dir / "full.db")
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_creating_an_experiment_on_a_full_disk_says_so_and_leaves_nothing(tmp_path):
    with _small_mount(tmp_path / "tiny", "1m") as data_dir:
        client = MlflowClient(f"trackio://{data_dir}")
        client.create_experiment("first")  # the directory holds a project (and its lock file)
        client.search_experiments()  # ... open, as a working store holds it
        with open(data_dir / "ballast", "wb", buffering=0) as ballast:  # fill the disk
            with pytest.raises(OSError, match="No space left"):
                while True:
                    ballast.write(b"x" * 4096)
        before = sorted(p.name for p in data_dir.iterdir())
        with pytest.raises(MlflowException, match=r"disk is full.*free disk space"):
            client.create_experiment("no-room")
        assert sorted(p.name for p in data_dir.iterdir()) == before
        assert client.get_experiment_by_name("no-room") is None


CREATOR = """
import sys, mlflow
client = mlflow.MlflowClient(sys.argv[1])
for i in range(40):
    client.create_experiment(f"made-{i}")
"""

LOOKER = """
import sys, time, mlflow
client = mlflow.MlflowClient(sys.argv[1])
deadline = time.time() + 60
seen = set()
while len(seen) < 40 and time.time() < deadline:
    for i in range(40):
        if client.get_experiment_by_name(f"made-{i}") is not None:
            seen.add(i)
    client.search_experiments()
print(len(seen))
"""


def test_experiments_appear_whole_to_other_processes(store_uri):
    MlflowClient(store_uri).search_experiments()  # the data directory exists
    looker = _python(LOOKER, store_uri, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    creator = _python(CREATOR, store_uri, stderr=subprocess.PIPE, text=True)
    _, creator_err = creator.communicate(timeout=300)
    seen, looker_err = looker.communicate(timeout=300)
    assert creator.returncode == 0, creator_err
    assert looker.returncode == 0 and seen.strip() == "40", looker_err
    assert "Skipping" not in looker_err  # never a half-made project file


def test_close_dead_runs_refuses_a_missing_directory(tmp_path):
    missing = tmp_path / "missing"
    result = subprocess.run(
        [sys.executable, "-m", "mytracker.cli", "close-dead-runs", "--dir", str(missing)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert f"no Trackio data directory at {missing}" in result.stderr
    assert not missing.exists()
