"""The trackio:// store end to end: MLflow's APIs in, MLflow and Trackio views out."""

import json
import math
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException



def test_fluent_run_lands_in_a_trackio_project(tracking, data_dir):
    mlflow.set_experiment("my exp")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_params({"lr": 0.01, "optimizer": "adam"})
        mlflow.set_tag("team", "vision")
        for step in range(3):
            mlflow.log_metrics({"train/loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        mlflow.log_text("hello", "notes/hello.txt")
    run_id = run.info.run_id

    got = MlflowClient().get_run(run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "first"
    assert got.data.params == {"lr": "0.01", "optimizer": "adam"}
    assert got.data.metrics == {"train/loss": 1 / 3, "acc": 0.2}
    assert got.data.tags["team"] == "vision"
    # Artifacts go to a real file:// directory under the data directory.
    assert got.info.artifact_uri.startswith(f"file://{data_dir}/")
    local = Path(got.info.artifact_uri.removeprefix("file://")) / "notes" / "hello.txt"
    assert local.read_text() == "hello"

    # The experiment is the Trackio project file; the run is a Trackio run with the same id.
    conn = sqlite3.connect(data_dir / "myexp.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    (config,) = conn.execute("SELECT config FROM configs WHERE run_id = ?", (run_id,)).fetchone()
    config = json.loads(config)
    assert config["lr"] == "0.01" and config["optimizer"] == "adam"
    assert config["_mlflow_tags"]["team"] == "vision" and config["_mlflow_status"] == "FINISHED"
    rows = conn.execute(
        "SELECT step, metrics FROM metrics WHERE run_id = ? AND run_name = 'first' ORDER BY id",
        (run_id,),
    ).fetchall()
    # The empty row that showed the run from its creation made way for the first real one, so
    # Trackio counts the steps there are.
    assert [(s, json.loads(m)) for s, m in rows] == [
        (step, {"train/loss": 1.0 / (step + 1), "acc": step / 10}) for step in range(3)
    ]


def test_metric_values_and_timestamps_round_trip_exactly(tracking):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("exact")).info.run_id
    values = [math.nan, math.inf, -math.inf, 0.1, -0.0, 1e-300, 123456789.123456789, 7]
    points = [Metric("v", value, 1_600_000_000_000 + i * 7, i * 1000) for i, value in enumerate(values)]
    client.log_batch(run_id, metrics=points)
    history = client.get_metric_history(run_id, "v")
    assert [(m.timestamp, m.step) for m in history] == [(p.timestamp, p.step) for p in points]
    # Infinities come back as MLflow's SQL store returns them: the largest double.
    returned = [1.7976931348623157e308 if v == math.inf else -1.7976931348623157e308
                if v == -math.inf else v for v in values]
    for got, want in zip(history, returned):
        assert (math.isnan(got.value) and math.isnan(want)) or got.value == want
    assert client.get_run(run_id).data.metrics["v"] == 7.0  # the latest point: largest step


def test_reserved_and_system_keys_keep_their_names(tracking, data_dir):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("keys")).info.run_id
    client.log_batch(run_id, metrics=[
        Metric("step", 1.0, 1, 0), Metric("__step", 2.0, 1, 0), Metric("time", 3.0, 1, 0),
        Metric("system/cpu_utilization_percentage", 40.0, 2, 0),
    ])
    assert client.get_run(run_id).data.metrics == {
        "step": 1.0, "__step": 2.0, "time": 3.0, "system/cpu_utilization_percentage": 40.0
    }
    assert [m.value for m in client.get_metric_history(run_id, "__step")] == [2.0]
    conn = sqlite3.connect(data_dir / "keys.db")
    # System metrics go to Trackio's system table, not among the training metrics.
    (system,) = conn.execute("SELECT metrics FROM system_metrics WHERE run_id = ?", (run_id,)).fetchone()
    assert json.loads(system) == {"cpu_utilization_percentage": 40.0, "step": 0}


def test_async_logging_is_thread_safe(tracking):
    mlflow.set_experiment("async")
    with mlflow.start_run() as run:
        for step in range(200):
            mlflow.log_metric("loss", step * 0.5, step=step, synchronous=False)
            mlflow.log_param(f"p{step}", step, synchronous=False)
    client = MlflowClient()
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == list(range(200))
    assert len(client.get_run(run.info.run_id).data.params) == 200


def test_nested_runs_group_under_parent_in_trackio(tracking, data_dir):
    mlflow.set_experiment("nested")
    with mlflow.start_run(run_name="search") as parent:
        with mlflow.start_run(nested=True) as child:
            pass
    child_run = MlflowClient().get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child_run.info.run_name  # MLflow names nested runs that arrive unnamed
    conn = sqlite3.connect(data_dir / "nested.db")
    (config,) = conn.execute("SELECT config FROM configs WHERE run_id = ?", (child.info.run_id,)).fetchone()
    assert json.loads(config)["_Group"] == "search"


def test_experiment_names_never_merge_or_escape(tracking, data_dir):
    client = MlflowClient()
    ids = {name: client.create_experiment(name) for name in ["my exp", "myexp", "my.exp", "../../x"]}
    assert len(set(ids.values())) == 4
    files = sorted(p.name for p in data_dir.glob("*.db"))
    assert files == ["myexp-2.db", "myexp-3.db", "myexp.db", "x.db"]
    assert not (data_dir.parent.parent / "x.db").exists()
    for name, experiment_id in ids.items():
        assert client.get_experiment_by_name(name).experiment_id == experiment_id
    assert client.get_experiment("0").name == "Default"


def test_existing_trackio_project_is_adopted_by_its_own_name(tracking, data_dir):
    import trackio  # noqa: F401  (a plain Trackio project, made by Trackio's own storage)
    from trackio.sqlite_storage import SQLiteStorage

    # Trackio's storage writes to its own TRACKIO_DIR; copy its file into our data directory.
    SQLiteStorage.bulk_log("plainproj", "trackio-run", [{"x": 1.0}], run_id="a" * 32)
    source = SQLiteStorage.get_project_db_path("plainproj")
    data_dir.mkdir(parents=True)
    (data_dir / "plainproj.db").write_bytes(source.read_bytes())

    client = MlflowClient()
    # A Trackio project is an MLflow experiment already, under its own name (see test_native.py).
    experiment_id = client.get_experiment_by_name("plainproj").experiment_id
    with pytest.raises(MlflowException, match="already exists"):
        client.create_experiment("plainproj")
    run = client.create_run(experiment_id)  # the first MLflow write adopts the file in place
    client.log_metric(run.info.run_id, "y", 2.0)
    assert client.get_experiment_by_name("plainproj").experiment_id == experiment_id
    names = {r["name"] for r in _trackio_records(data_dir / "plainproj.db")}
    assert names == {"trackio-run", run.info.run_name}
    assert [p.name for p in data_dir.glob("plainproj*.db")] == ["plainproj.db"]  # in place


def _trackio_records(path):
    conn = sqlite3.connect(path)
    return [{"id": i, "name": n} for i, n in conn.execute("SELECT DISTINCT run_id, run_name FROM metrics")]


def test_trackio_reader_and_dashboard_see_the_run(trackio_home, unique_name):
    mlflow.set_tracking_uri("trackio://")  # Trackio's default directory: the dashboard's data
    try:
        mlflow.set_experiment(unique_name)
        with mlflow.start_run(run_name="visible") as run:
            mlflow.log_param("depth", 3)
            for step in range(4):
                mlflow.log_metric("loss", 1.0 - step / 10, step=step)
    finally:
        mlflow.set_tracking_uri(None)
    assert (Path(trackio_home) / f"{unique_name}.db").exists()

    from starlette.testclient import TestClient
    from trackio.server import build_starlette_app_only
    from trackio.sqlite_storage import SQLiteStorage

    records = SQLiteStorage.get_run_records(unique_name)
    assert [(r["id"], r["name"]) for r in records] == [(run.info.run_id, "visible")]
    logs = SQLiteStorage.get_logs(unique_name, "visible", run_id=run.info.run_id)
    assert [(row["step"], row["loss"]) for row in logs if "loss" in row] == [
        (step, 1.0 - step / 10) for step in range(4)
    ]

    app, _ = build_starlette_app_only()
    client = TestClient(app)
    runs = client.post("/api/get_runs_for_project", json={"project": unique_name}).json()["data"]
    assert [r["name"] for r in runs] == ["visible"]
    configs = client.post("/api/get_run_configs", json={"project": unique_name}).json()["data"]
    assert configs[run.info.run_id]["depth"] == "3"
    served = client.post(
        "/api/get_logs", json={"project": unique_name, "run": "visible", "run_id": run.info.run_id}
    ).json()["data"]
    assert [row["loss"] for row in served if "loss" in row] == [1.0, 0.9, 0.8, 0.7]


def test_a_new_process_reads_everything_back(tracking, data_dir):
    mlflow.set_experiment("persist")
    with mlflow.start_run(run_name="kept") as run:
        mlflow.log_params({"a": "1"})
        mlflow.log_metric("m", 0.25, step=5)
        mlflow.set_tag("t", "x")
    script = textwrap.dedent(f"""
        import json, mlflow
        client = mlflow.MlflowClient("trackio://{data_dir}")
        run = client.get_run("{run.info.run_id}")
        history = client.get_metric_history(run.info.run_id, "m")
        exp = client.get_experiment_by_name("persist")
        found = client.search_runs([exp.experiment_id], "params.a = '1' and metrics.m > 0.2")
        print(json.dumps([run.info.status, run.info.run_name, run.data.params, run.data.tags["t"],
                          [(h.step, h.value) for h in history], [r.info.run_id for r in found]]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [
        "FINISHED", "kept", {"a": "1"}, "x", [[5, 0.25]], [run.info.run_id],
    ]


WRITER = """
import sys, mlflow
from mlflow.entities import Metric
client = mlflow.MlflowClient(sys.argv[1])
run_id, worker = sys.argv[2], int(sys.argv[3])
for batch in range(20):
    client.log_batch(run_id, metrics=[
        Metric(f"w{worker}", float(i), 1_700_000_000_000 + batch * 100 + i, batch * 100 + i)
        for i in range(100)
    ], params=[mlflow.entities.Param(f"p{worker}_{batch}", "v")])
    client.log_metric(run_id, "shared", float(worker), step=batch)
"""


def test_several_processes_write_one_experiment_without_loss(tracking):
    client = MlflowClient()
    experiment_id = client.create_experiment("crowd")
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(2)]
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, tracking, run_ids[w % 2], str(w)])
        for w in range(4)
    ]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    for w in range(4):
        history = client.get_metric_history(run_ids[w % 2], f"w{w}")
        assert sorted(m.step for m in history) == list(range(2000))
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "shared")) == 40
        assert len(client.get_run(run_id).data.params) == 40


@pytest.mark.parametrize(
    "uri, accepted",
    [
        ("trackio://", True),
        ("trackio:///abs/dir", True),
        ("trackio://host/dir", False),
        ("trackio://host:5000", False),
        ("trackio:relative/dir", False),
        ("trackio:///dir?x=1", False),
    ],
)
def test_uri_forms(uri, accepted, monkeypatch, tmp_path):
    from mytracker.store._uri import data_dir_from_uri

    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "home"))
    if accepted:
        expected = tmp_path / "home" if uri == "trackio://" else Path("/abs/dir")
        assert data_dir_from_uri(uri) == expected
    else:
        with pytest.raises(MlflowException, match="trackio:///absolute/path"):
            data_dir_from_uri(uri)


def test_default_dir_follows_hf_home(monkeypatch, tmp_path):
    from mytracker.store._uri import data_dir_from_uri

    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert data_dir_from_uri("trackio://") == tmp_path / "hf" / "trackio"


def test_unknown_trackio_schema_is_refused_without_writing(tracking, data_dir):
    MlflowClient().create_experiment("future")
    path = data_dir / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    from mytracker.store._store import TrackioStore

    store = TrackioStore(tracking)  # a fresh process would see the file like this
    for call in (lambda: store.get_experiment_by_name("future"), lambda: store.create_experiment("future")):
        with pytest.raises(MlflowException, match=r"future.db has Trackio database schema version 9"):
            call()
    assert path.read_bytes() == before
    assert sorted(p.name for p in data_dir.glob("*.db")) == ["future.db"]


def test_unsupported_features_say_so(tracking):
    store = mlflow.tracking._tracking_service.utils._get_store()
    with pytest.raises(MlflowException, match="does not support 'start_trace'"):
        store.start_trace(None)
    assert store.search_traces(["0"]) == ([], None)


def test_non_numeric_trackio_values_do_not_disturb_metrics(tracking, data_dir):
    """Trackio rows can hold images or tables under any key; MLflow only sees numbers."""
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("media")).info.run_id
    conn = sqlite3.connect(data_dir / "media.db")
    image = {"_type": "trackio.image", "file_path": "x.png"}
    conn.execute(
        "INSERT INTO metrics (run_id, timestamp, run_name, step, metrics) VALUES (?, ?, 'r', 0, ?)",
        (run_id, "2020-09-13T12:26:40.000000+00:00", json.dumps({"m": image, "n": 1.5})),
    )
    conn.commit()
    client.log_batch(run_id, metrics=[Metric("m", 2.0, 1_600_000_000_000, 0)])
    assert [(m.value, m.step) for m in client.get_metric_history(run_id, "m")] == [(2.0, 0)]


def test_reads_inside_a_write_see_the_write(tracking, data_dir):
    from mytracker.store._db import ProjectDB

    client = MlflowClient()
    client.create_experiment("nested-tx")
    db = ProjectDB(data_dir / "nested-tx.db")
    with db.write() as conn:
        conn.execute("UPDATE mlflow_experiment SET name = 'inside'")
        assert db.experiment().name == "inside"
        assert not db.has_run("0" * 32)
    assert db.experiment().name == "inside"


def test_outputs_and_trace_links_are_kept(tracking):
    from mlflow.entities.logged_model_output import LoggedModelOutput

    store = mlflow.tracking._tracking_service.utils._get_store()
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("outputs")).info.run_id
    store.log_outputs(run_id, [LoggedModelOutput("m-123", 4)])
    store.link_traces_to_run(["tr-1", "tr-2"], run_id)
    store.link_traces_to_run(["tr-1"], run_id)  # linking again is harmless
    outputs = client.get_run(run_id).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [("m-123", 4)]
    with pytest.raises(MlflowException, match="more than 100 traces"):
        store.link_traces_to_run([f"t{i}" for i in range(101)], run_id)


def test_a_step_logged_in_two_batches_stays_one_trackio_row(tracking, data_dir):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("split")).info.run_id
    t = 1_700_000_000_000
    client.log_batch(run_id, metrics=[Metric("loss", 0.5, t, 7), Metric("acc", 0.9, t, 7)])
    client.log_batch(run_id, metrics=[Metric("lr", 0.01, t, 7), Metric("loss", 0.5, t, 7)])
    client.log_batch(run_id, metrics=[Metric("loss", 0.4, t, 7)])  # a second value: its own row
    rows = sqlite3.connect(data_dir / "split.db").execute(
        "SELECT metrics FROM metrics WHERE run_id = ? AND step = 7 ORDER BY id", (run_id,)
    ).fetchall()
    assert [json.loads(text) for (text,) in rows] == [
        {"loss": 0.5, "acc": 0.9, "lr": 0.01}, {"loss": 0.4}
    ]
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.4, 0.5]


def test_a_run_name_longer_than_250_characters_is_refused(tracking):
    """Trackio repeats a run's name in every metric row: a long name is refused, as a VARCHAR(250)
    refuses it in MLflow's own SQL schema, and nothing is written."""
    client = MlflowClient()
    experiment_id = client.create_experiment("long-names")
    with pytest.raises(MlflowException) as error:
        client.create_run(experiment_id, run_name="n" * 251)
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "at most 250 characters" in error.value.message
    assert client.search_runs([experiment_id]) == []

    run = client.create_run(experiment_id, run_name="n" * 250)
    for rename in (
        lambda: client.set_tag(run.info.run_id, "mlflow.runName", "m" * 251),
        lambda: client.update_run(run.info.run_id, name="m" * 251),
    ):
        with pytest.raises(MlflowException) as error:
            rename()
        assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run.info.run_id).info.run_name == "n" * 250


def test_open_project_files_stay_under_the_cap(tracking, data_dir):
    """More experiments than the store keeps open: listing them all, again and again, leaves at
    most 64 project files open in this process, and every experiment still answers."""
    import os

    from mytracker.store._catalog import MAX_OPEN_FILES

    client = MlflowClient()
    experiment_ids = [client.create_experiment(f"cap-{i}") for i in range(MAX_OPEN_FILES + 16)]
    for _ in range(3):
        listed = client.search_experiments(max_results=1000)
        assert len(listed) == len(experiment_ids) + 1  # and the Default experiment

    def open_project_files() -> int:
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return sum(t.startswith(str(data_dir)) and t.endswith(".db") for t in targets)

    assert open_project_files() <= MAX_OPEN_FILES
    for experiment_id in experiment_ids[:5]:  # evicted ones open again when used
        run = client.create_run(experiment_id)
        client.log_metric(run.info.run_id, "m", 1.0)
    assert open_project_files() <= MAX_OPEN_FILES


def test_renaming_a_long_run_renames_every_trackio_row(tracking, data_dir):
    """A rename rewrites the run's Trackio rows a few thousand per transaction (so other writers
    are not held up for long); when it returns, every row carries the new name."""
    from mytracker.store._db import RENAME_ROWS_PER_TRANSACTION

    client = MlflowClient()
    experiment_id = client.create_experiment("rename-long")
    run_id = client.create_run(experiment_id, run_name="before").info.run_id
    n = 2 * RENAME_ROWS_PER_TRANSACTION + 123
    for first in range(0, n, 1000):
        client.log_batch(run_id, metrics=[
            Metric("loss", 1.0, 1_700_000_000_000 + i, i) for i in range(first, min(first + 1000, n))
        ])
    client.log_metric(run_id, "system/cpu", 3.0, timestamp=1_700_000_000_000, step=0)
    client.set_tag(run_id, "mlflow.runName", "after")
    conn = sqlite3.connect(data_dir / "rename-long.db")
    names = dict(conn.execute(
        "SELECT run_name, count(*) FROM metrics WHERE run_id = ? GROUP BY run_name", (run_id,)
    ))
    assert names == {"after": n}  # the row that made the run appear at once gave way to these
    assert conn.execute("SELECT DISTINCT run_name FROM system_metrics").fetchall() == [("after",)]
    assert conn.execute("SELECT run_name FROM configs").fetchall() == [("after",)]
    assert client.get_run(run_id).info.run_name == "after"
