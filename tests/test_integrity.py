"""Issue #13, "Nothing lost when others share the directory": forged or out-of-range input gets
MLflow's answer, the data directory is never misread or changed by what it refuses, and what
other processes (or a killed one) leave behind is handled. Real MLflow, real Trackio files,
real processes; MLflow's own SQLite store (`sqlite:///`) is the reference where it answers.
"""

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException


def _python(script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, **kwargs,
    )


def _error_code(call) -> str:
    try:
        call()
    except MlflowException as e:
        return e.error_code
    return "no error"


def _token(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


# --- (6) forged page tokens ---------------------------------------------------------------------

FORGED_TOKENS = [
    "garbage",
    _token({"after": [1e300, 1, 0]}),  # a float beyond any int64
    _token({"after": [10**30, 1, 0]}),  # a timestamp beyond int64
    _token({"after": [1000, 10**30, 0]}),  # a step beyond int64
    _token({"after": [1000, 1, 10**30]}),  # a skip beyond int64
    _token({"after": [1000, 1, -5]}),
    _token({"after": [-1, 1, 0]}),
    _token({"after": [1000, 1, "x"]}),
    _token({"offset": "a"}),
]


def test_a_forged_page_token_is_invalid_parameter_value_as_in_mlflow(tmp_path):
    answers = {}
    for uri in (f"sqlite:///{tmp_path}/mlflow.db", f"trackio://{tmp_path}/trackio"):
        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("paged")).info.run_id
        for step in range(3):
            client.log_metric(run_id, "m", float(step), timestamp=1000 + step, step=step)
        store = client._tracking_client.store
        answers[uri.split(":")[0]] = [
            _error_code(lambda: store.get_metric_history(run_id, "m", 2, page_token=token))
            for token in FORGED_TOKENS
        ]
        # The tokens the store hands out still page through everything.
        first = store.get_metric_history(run_id, "m", max_results=2)
        rest = store.get_metric_history(run_id, "m", max_results=2, page_token=first.token)
        assert [m.step for m in first + rest] == [0, 1, 2]
    assert answers["sqlite"] == ["INVALID_PARAMETER_VALUE"] * len(FORGED_TOKENS)
    assert answers["trackio"] == answers["sqlite"]


# --- (7) numbers beyond what a store can hold -----------------------------------------------------

OUT_OF_RANGE = {
    "step 2**63": lambda s, e, r: s.log_batch(r, [Metric("m", 1.0, 1000, 2**63)], [], []),
    "step -2**63-1": lambda s, e, r: s.log_batch(r, [Metric("m", 1.0, 1000, -(2**63) - 1)], [], []),
    "timestamp 2**64": lambda s, e, r: s.log_batch(r, [Metric("m", 1.0, 2**64, 1)], [], []),
    "end_time 2**64": lambda s, e, r: s.update_run_info(r, RunStatus.FINISHED, 2**64, None),
    "end_time 2**63": lambda s, e, r: s.update_run_info(r, RunStatus.FINISHED, 2**63, None),
    "start_time 2**64": lambda s, e, r: s.create_run(e, "u", 2**64, [], "n"),
}


def test_numbers_beyond_64_bits_are_refused_with_mlflows_exception(tmp_path):
    """MLflow's SQLite store answers these with an MlflowException too (INTERNAL_ERROR, from
    SQLite's "Python int too large"); the Trackio store says which parameter is bad:
    INVALID_PARAMETER_VALUE. Neither writes anything."""
    answers = {}
    for uri in (f"sqlite:///{tmp_path}/mlflow.db", f"trackio://{tmp_path}/trackio"):
        client = MlflowClient(uri)
        store = client._tracking_client.store
        experiment_id = client.create_experiment("big")
        answers[uri.split(":")[0]] = codes = []
        for case in OUT_OF_RANGE.values():
            run_id = client.create_run(experiment_id).info.run_id
            codes.append(_error_code(lambda: case(store, experiment_id, run_id)))
            run = client.get_run(run_id)
            assert run.info.status == "RUNNING" and run.info.end_time is None
            assert client.get_metric_history(run_id, "m") == []
        assert len(client.search_runs([experiment_id])) == len(OUT_OF_RANGE)
    assert all(isinstance(code, str) and code != "no error" for code in answers["sqlite"])
    assert answers["trackio"] == ["INVALID_PARAMETER_VALUE"] * len(OUT_OF_RANGE)


# --- (9) a trackio:// URI given where a directory is asked for -------------------------------------

URI_AS_DIR = """
import sys, mlflow, mytracker
from pathlib import Path
mytracker.init(experiment="sdk", dir=sys.argv[1])
with mytracker.start_run("r"):
    mytracker.log_metrics({"m": 1.0})
mytracker.autolog(dir=Path(sys.argv[2]))  # a Path turns 'trackio:///x' into 'trackio:/x'
print(mlflow.get_tracking_uri())
mlflow.set_experiment("auto")
with mlflow.start_run():
    mlflow.log_metric("m", 2.0)
"""


def test_a_trackio_uri_given_as_the_directory_names_that_store(tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    first, second = tmp_path / "first", tmp_path / "second"
    result = _python(URI_AS_DIR, f"trackio://{first}", f"trackio://{second}", cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"trackio://{second}"]
    assert list(work.iterdir()) == []  # nothing under ./trackio:
    for directory, experiment, value in ((first, "sdk", 1.0), (second, "auto", 2.0)):
        client = MlflowClient(f"trackio://{directory}")
        experiment_id = client.get_experiment_by_name(experiment).experiment_id
        [run] = client.search_runs([experiment_id])
        assert run.data.metrics == {"m": value}
    cli = subprocess.run(
        [sys.executable, "-m", "mytracker.cli", "close-dead-runs", "--dir", f"trackio://{first}",
         "--dry-run"],
        cwd=work, capture_output=True, text=True, timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert list(work.iterdir()) == []
    bad = _python("import mytracker; mytracker.init(dir='trackio://host/x')", cwd=work)
    assert "MlflowException: Invalid Trackio store URI 'trackio://host/x'" in bad.stderr
    assert list(work.iterdir()) == []


# --- (11) drafts left by a process killed while creating an experiment ------------------------------

KILLED_WHILE_CREATING = """
import os, signal, sys, mlflow
client = mlflow.MlflowClient(sys.argv[1])
client.search_experiments()
# Die by SIGKILL at the last moment: the draft is whole, not yet linked into place.
def die(source, target):
    if str(source).endswith(".draft"):
        os.kill(os.getpid(), signal.SIGKILL)
os.link = die
client.create_experiment("killed")
"""


def test_drafts_of_killed_processes_are_removed_and_live_ones_kept(store_uri, data_dir):
    killed = _python(KILLED_WHILE_CREATING, store_uri)
    assert killed.returncode == -9, killed.stderr
    left = sorted(p.name for p in data_dir.glob(".*draft*"))
    assert left and all(name.startswith(".killed.db.") for name in left), left
    # A draft another live process (this one) is making, and one made on another host.
    live = data_dir / f".busy.db.{os.getpid()}.draft"
    elsewhere = data_dir / ".far.db.999999.otherhost.draft"
    live.write_bytes(b"in progress")
    elsewhere.write_bytes(b"in progress elsewhere")

    client = MlflowClient(store_uri)
    assert client.get_experiment_by_name("killed") is None
    client.create_experiment("next")
    assert sorted(p.name for p in data_dir.glob(".*draft*")) == sorted([live.name, elsewhere.name])
    assert live.read_bytes() == b"in progress"
    killed_id = client.create_experiment("killed")
    assert client.get_experiment(killed_id).name == "killed"
    assert (data_dir / "killed.db").exists()


# --- (3) experiment ids are never handed out twice -------------------------------------------------


def test_an_id_is_never_handed_out_twice_even_while_its_file_is_unreadable(store_uri, data_dir):
    client = MlflowClient(store_uri)
    assert [client.create_experiment(n) for n in ("alpha", "beta")] == ["1", "2"]
    beta = data_dir / "beta.db"
    with sqlite3.connect(beta) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    saved = beta.read_bytes()
    beta.write_bytes(saved[: len(saved) // 3])  # damaged (or being copied in) for a while

    gamma = MlflowClient(store_uri).create_experiment("gamma")  # another client, as a new process
    beta.write_bytes(saved)  # the file is restored
    ids = sorted((e.experiment_id, e.name) for e in client.search_experiments())
    assert ids == [("0", "Default"), ("1", "alpha"), ("2", "beta"), ("3", "gamma")]
    assert gamma == "3"

    # The mark only grows; a missing mark is rebuilt from the files.
    (data_dir / ".mytracker.ids").unlink()
    assert client.create_experiment("delta") == "4"
    (data_dir / ".mytracker.ids").write_text("10\n")
    assert client.create_experiment("epsilon") == "11"


# --- (5) names longer than a file name -------------------------------------------------------------

LONG_NAMES = [
    "実" * 80,  # 240 bytes: fits a file name, not the draft's
    "験" * 120,  # 360 bytes
    "\U0001d400" * 70,  # 70 math-bold A: 280 bytes
    "\U0001d401" * 70 + "x",  # reduces like the one before, then differs
    "é" * 200 + "/../" + "名" * 100,
]


def _name_outcomes(uri: str) -> list:
    import mlflow

    client = MlflowClient(uri)
    seen = []
    for name in LONG_NAMES:
        experiment_id = client.create_experiment(name)
        seen.append(client.get_experiment_by_name(name).name == name)
        mlflow.set_tracking_uri(uri)
        seen.append(mlflow.set_experiment(name).experiment_id == experiment_id)
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_metric("m", 1.0)
        seen.append(len(client.search_runs([experiment_id])))
    client.rename_experiment(client.get_experiment_by_name(LONG_NAMES[0]).experiment_id,
                             LONG_NAMES[0] + "改")
    seen.append(client.get_experiment_by_name(LONG_NAMES[0]) is None)
    seen.append(client.get_experiment_by_name(LONG_NAMES[0] + "改") is not None)
    client.delete_experiment(client.get_experiment_by_name(LONG_NAMES[1]).experiment_id)
    seen.append(sorted(e.name for e in client.search_experiments()))
    mlflow.set_tracking_uri(None)
    return seen


def test_names_longer_than_a_file_name_work_as_in_mlflow(tmp_path, data_dir):
    expected = _name_outcomes(f"sqlite:///{tmp_path}/mlflow.db")
    assert _name_outcomes(f"trackio://{data_dir}") == expected
    for path in data_dir.iterdir():
        assert len(path.name.encode()) <= 255 - 64  # room left for the draft's name
    assert not list(data_dir.glob(".*draft*"))


# --- (4) files the store refuses are left byte for byte as they were ---------------------------------


def _foreign_files(data_dir):
    return sorted(p.name for p in data_dir.iterdir() if not p.name.startswith(("ours.", "Default.")))


def test_refused_files_are_not_changed_by_listing(tmp_path, store_uri, data_dir, caplog):
    MlflowClient(store_uri).create_experiment("ours")
    MlflowClient(f"sqlite:///{data_dir}/mlflow.db").create_experiment("in mlflow")
    (data_dir / "empty.db").touch()
    with contextlib.closing(sqlite3.connect(data_dir / "future.db")) as conn:
        conn.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY)")
        conn.execute("PRAGMA user_version = 3")
    foreign = ("mlflow.db", "empty.db", "future.db")
    before = {name: (data_dir / name).read_bytes() for name in foreign}
    files_before = _foreign_files(data_dir)

    client = MlflowClient(store_uri)
    assert [e.name for e in client.search_experiments()] == ["ours", "Default"]
    unchanged = {name: (data_dir / name).read_bytes() == before[name] for name in foreign}
    assert unchanged == dict.fromkeys(foreign, True)  # not even switched to WAL
    with pytest.raises(MlflowException, match=r"mlflow\.db is MLflow's own SQLite database"):
        client.get_experiment_by_name("mlflow")
    with pytest.raises(MlflowException, match=r"empty\.db is an empty database.*Nothing was"):
        client.get_experiment_by_name("empty")
    with pytest.raises(MlflowException, match=r"future\.db has Trackio database schema version 3"):
        client.get_experiment_by_name("future")
    assert {name: (data_dir / name).read_bytes() for name in foreign} == before
    assert _foreign_files(data_dir) == files_before  # no -wal, -shm or -journal beside them
    assert "migrate" not in caplog.text.split("mlflow.db", 1)[1].split("\n")[0]
    assert MlflowClient(f"sqlite:///{data_dir}/mlflow.db").get_experiment_by_name("in mlflow")

    # Another program reading them (a read lock held) does not hold a listing up: nothing
    # waits to write to them (before: 125 s, then "unusable").
    readers = [sqlite3.connect(data_dir / name, isolation_level=None) for name in foreign]
    try:
        for reader in readers:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        listing = _python("import sys, mlflow; print([e.name for e in "
                          "mlflow.MlflowClient(sys.argv[1]).search_experiments()])", store_uri)
        assert listing.stdout.strip() == "['ours', 'Default']", listing.stderr
    finally:
        for reader in readers:
            reader.close()


# --- (8) read-only directories -------------------------------------------------------------------------

READ_ONLY_CALLS = """
import sys, mlflow
for uri, call in ((sys.argv[1], "create_experiment"), (sys.argv[2], "create_experiment")):
    try:
        client = mlflow.MlflowClient(uri)
        client.search_experiments() if call == "search_experiments" else client.create_experiment("b")
        print("no error")
    except mlflow.exceptions.MlflowException as e:
        print("MlflowException", e.error_code, e.message)
print([e.name for e in mlflow.MlflowClient(sys.argv[2]).search_experiments()])
print([e.name for e in mlflow.MlflowClient(sys.argv[1]).search_experiments()])
"""


def test_a_read_only_directory_gets_a_clear_error_when_written(tmp_path):
    from test_reliability import _small_mount

    with _small_mount(tmp_path / "empty", "4m") as empty, _small_mount(tmp_path / "used", "8m") as used:
        # Made by another process: a file this one holds open could not be remounted.
        made = _python("import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).create_experiment('a')",
                       f"trackio://{used}")
        assert made.returncode == 0, made.stderr
        for mount in (empty, used):
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        result = _python(READ_ONLY_CALLS, f"trackio://{empty}", f"trackio://{used}")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        for line, written in zip(lines, (f"{empty}/.mytracker.lock", f"{used}/b.db")):
            assert line == (
                f"MlflowException INVALID_STATE Cannot write {written}: "
                "Read-only file system; make the data directory and its files writable "
                "(nothing was written)."
            )
        assert lines[2] == "['a', 'Default']"  # reading still works
        # ... also in an empty one: MLflow's Default experiment needs no file until a run
        assert lines[3] == "['Default']"
        # Trackio's dashboard cannot start there (it locks each project): one clear line.
        show = subprocess.run(
            [sys.executable, "-m", "mytracker.cli", "show", "--dir", str(used), "--no-browser"],
            capture_output=True, text=True, timeout=120,
        )
        assert show.returncode == 2
        assert show.stderr.splitlines() == [
            f"mytracker show: error: --dir {used} is not writable, and Trackio's dashboard writes lock "
            "files beside the projects: run it as a user who may write there, or on a copy"
        ]


# --- over REST: MLflow's JSON errors, never an HTML 500 ---------------------------------------------


@pytest.mark.heavy  # starts MLflow's tracking server
def test_over_rest_forged_tokens_and_long_names_get_mlflows_answers(tmp_path, data_dir):
    import requests
    from servers import mytracker_server

    log_path = tmp_path / "server.log"
    with mytracker_server(data_dir, workers=1, log_path=log_path) as url:
        client = MlflowClient(url)
        for name in LONG_NAMES[:3]:
            experiment_id = client.create_experiment(name)
            assert client.get_experiment_by_name(name).experiment_id == experiment_id
        run_id = client.create_run(experiment_id).info.run_id
        client.log_metric(run_id, "m", 1.0, step=1)
        for token in FORGED_TOKENS:
            answer = requests.get(f"{url}/api/2.0/mlflow/metrics/get-history", timeout=30, params={
                "run_id": run_id, "metric_key": "m", "max_results": 1, "page_token": token})
            assert answer.status_code == 400, answer.text
            assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert " 500 " not in log_path.read_text(errors="replace")


# --- (8) a second OS user -----------------------------------------------------------------------------

AS_NOBODY = [
    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
    # Only to read this machine's Python, which lives under root's home: writing is still
    # checked as for any other user.
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
]

SECOND_USER = """
import sys, mlflow
from mlflow.exceptions import MlflowException
directory, run_id = sys.argv[1:]
client = mlflow.MlflowClient(f"trackio://{directory}")
print([e.name for e in client.search_experiments()])
print([m.value for m in client.get_metric_history(run_id, "m")])
for call in (lambda: client.log_metric(run_id, "m", 2.0), lambda: client.create_experiment("b")):
    try:
        print("returned", call())
    except MlflowException as e:
        print("MlflowException", e.error_code, e.message)
"""


@pytest.fixture
def traversable_tmp():
    """A directory every user can reach (pytest's own are root's alone)."""
    import shutil
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="mytracker-users-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_second_os_user_gets_clear_errors_and_can_share_a_writable_directory(traversable_tmp):
    """Root writes two directories (and keeps its files open, so its latest writes are still in
    the WAL); `nobody` reads both, is refused writes with a clear error, and makes its own
    experiment in the directory both may write."""
    tmp_path = traversable_tmp
    home = tmp_path / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    answers, run_ids = {}, {}
    for name, mode in (("private", 0o755), ("shared", 0o777)):
        directory = tmp_path / name
        directory.mkdir()
        directory.chmod(mode)
        client = MlflowClient(f"trackio://{directory}")
        run_ids[name] = run_id = client.create_run(client.create_experiment("a")).info.run_id
        client.log_metric(run_id, "m", 1.0)
        result = subprocess.run(
            [*AS_NOBODY, sys.executable, "-c", textwrap.dedent(SECOND_USER), str(directory), run_id],
            env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        answers[name] = result.stdout.splitlines()
    writable = "make the data directory and its files writable"
    for name in ("private", "shared"):
        read, history, log, create = answers[name]
        assert (read, history) == ("['a', 'Default']", "[1.0]"), answers  # reading works
        assert log.startswith("MlflowException INVALID_STATE") and writable in log  # root's file
    assert answers["private"][3].startswith("MlflowException INVALID_STATE Cannot write")
    assert writable in answers["private"][3]
    # In a directory both may write, the second user makes experiments of its own.
    assert answers["shared"][3] == "returned 2"
    client = MlflowClient(f"trackio://{tmp_path / 'shared'}")
    assert client.get_experiment_by_name("b").experiment_id == "2"
    assert [m.value for m in client.get_metric_history(run_ids["shared"], "m")] == [1.0]
    assert client.create_experiment("c") == "3"


def test_a_file_from_before_migration_0007_reads_for_a_user_who_cannot_upgrade_it(traversable_tmp):
    """Migration 0007 records when each key was first logged, so a run lists its metrics in that
    order. A file from before it, in a directory another user can only read, still reads (its
    keys by name); the first process that may write upgrades it, and keys logged from then on
    come after the older ones."""
    directory = traversable_tmp / "older"
    directory.mkdir()
    directory.chmod(0o755)
    client = MlflowClient(f"trackio://{directory}")
    run_id = client.create_run(client.create_experiment("older")).info.run_id
    for key in ("zeta", "alpha"):
        client.log_metric(run_id, key, 1.0)
    path = next(directory.glob("older*.db"))
    conn = sqlite3.connect(path)
    with conn:  # the file as mytracker made it before 0007
        conn.execute("ALTER TABLE mlflow_latest_metrics DROP COLUMN logged")
        conn.execute("DELETE FROM mytracker_migrations WHERE name = '0007_latest_metrics_order'")
    conn.close()
    read = (
        "import sys, mlflow\n"
        "print(list(mlflow.MlflowClient(f'trackio://{sys.argv[1]}').get_run(sys.argv[2]).data.metrics))"
    )
    result = subprocess.run([*AS_NOBODY, sys.executable, "-c", read, str(directory), run_id],
                            env={**os.environ, "HOME": str(traversable_tmp)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["['alpha',", "'zeta']"]

    fresh = subprocess.run(  # a process that may write: upgrades the file, then logs "beta"
        [sys.executable, "-c", read.replace("print(", "c = mlflow.MlflowClient(f'trackio://{sys.argv[1]}'); "
                                            "c.log_metric(sys.argv[2], 'beta', 2.0); print(", 1),
         str(directory), run_id],
        capture_output=True, text=True, timeout=120,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == ["['alpha',", "'zeta',", "'beta']"]


# --- (1) creating an experiment while Trackio creates the same project --------------------------------

TRACKIO_RACER = """
import random, sys, time
import trackio
from trackio.sqlite_storage import SQLiteStorage

for line in sys.stdin:
    command, project, delay = line.split()
    if command == "check":  # what Trackio's own reader finds of the run
        print("points", len(SQLiteStorage.get_logs(project, "t")), flush=True)
        continue
    time.sleep(float(delay))
    run = trackio.init(project=project, name="t", auto_log_cpu=False, auto_log_gpu=False)
    for step in range(40):
        trackio.log({"x": float(step)}, step=step)
        time.sleep(random.uniform(0, 0.003))
    trackio.finish()
    print("done", run.id, flush=True)
"""

MLFLOW_RACER = """
import sys, time
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

client = MlflowClient(sys.argv[1])
client.search_experiments()
for line in sys.stdin:
    name, delay = line.split()
    time.sleep(float(delay))
    try:
        print("created", client.create_experiment(name), flush=True)
    except MlflowException as e:
        print("refused", e.error_code, e.message.replace(chr(10), " "), flush=True)
"""


def _racer(script: str, *args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def _answer(process: subprocess.Popen, first_word: str) -> list[str]:
    for line in process.stdout:
        if line.split()[:1] in ([first_word], ["created"], ["refused"]):
            return line.split()
    raise AssertionError(f"the racer exited with {process.wait()}")


def test_creating_an_experiment_while_trackio_creates_the_project_loses_nothing(
    data_dir, store_uri
):
    """Each trial: a Trackio process (init, 40 points, finish) and an MLflow process
    (`create_experiment` of the same name) start 0-120 ms apart. Whoever makes the file first,
    the experiment an id was returned for stays readable, Trackio's 40 points stay in it, and
    the file is whole; a refused create (the Trackio project existed already) names it."""
    import random

    data_dir.mkdir()
    env = {**os.environ, "TRACKIO_DIR": str(data_dir)}
    trackio_racer = _racer(TRACKIO_RACER, env=env)
    mlflow_racer = _racer(MLFLOW_RACER, store_uri, env=env)
    client = MlflowClient(store_uri)
    created, outcomes = {}, {"created": 0, "refused": 0}
    try:
        for trial in range(30):
            name = f"race{trial}"
            # Trackio makes its file when it flushes (at `finish`, ~30-60 ms after it starts).
            trackio_racer.stdin.write(f"run {name} {random.uniform(0, 0.06):.4f}\n")
            mlflow_racer.stdin.write(f"{name} {random.uniform(0, 0.12):.4f}\n")
            trackio_racer.stdin.flush()
            mlflow_racer.stdin.flush()
            made = _answer(mlflow_racer, "created")
            _, trackio_run_id = _answer(trackio_racer, "done")
            outcomes[made[0]] += 1
            if made[0] == "created":
                created[name] = made[1]
            else:
                assert made[:2] == ["refused", "RESOURCE_ALREADY_EXISTS"], (name, made)
            trackio_racer.stdin.write(f"check {name} 0\n")
            trackio_racer.stdin.flush()
            assert _answer(trackio_racer, "points") == ["points", "40"], name
            experiment = client.get_experiment_by_name(name)
            assert experiment is not None, name
            if name in created:
                assert experiment.experiment_id == created[name]
            history = client.get_metric_history(trackio_run_id, "x")
            assert [m.value for m in history] == [float(step) for step in range(40)], name
            with contextlib.closing(sqlite3.connect(data_dir / f"{name}.db")) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], name
    finally:
        for racer in (trackio_racer, mlflow_racer):
            racer.stdin.close()
            racer.wait(timeout=60)
    # Every id handed out is still there, in a new process's view too.
    fresh = MlflowClient(store_uri)
    assert {n: fresh.get_experiment(i).name for n, i in created.items()} == {n: n for n in created}
    assert outcomes["created"] > 0, outcomes


FRESH_VIEW = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("exp")
print(experiment.experiment_id, len(client.search_runs([experiment.experiment_id])))
"""


@pytest.mark.parametrize("removed", [("",), ("", "-wal", "-shm")], ids=["db", "db-wal-shm"])
@pytest.mark.parametrize("creator", ["same process", "another process"])
def test_an_experiment_made_again_after_its_file_was_deleted_while_open_is_empty(
    store_uri, data_dir, removed, creator
):
    """`exp.db` is deleted (alone, as `rm` does, or with its -wal and -shm, as
    `trackio.delete_project` does) while this process still has it open; "exp" made again holds
    none of the old run's points, in this process and in a new one."""
    from mlflow.entities import Metric

    client = MlflowClient(store_uri)
    old_run = client.create_run(client.create_experiment("exp")).info.run_id
    client.log_batch(old_run, [Metric("m", float(i), 1000 + i, i) for i in range(900)])
    for suffix in removed:
        (data_dir / f"exp.db{suffix}").unlink()
    if creator == "same process":
        new_id = client.create_experiment("exp")
    else:
        made = _python("import sys; from mlflow import MlflowClient; "
                       "print(MlflowClient(sys.argv[1]).create_experiment('exp'))", store_uri)
        new_id = made.stdout.strip()
    assert new_id == "2"
    assert client.get_experiment_by_name("exp").experiment_id == "2"
    assert client.search_runs(["2"]) == []
    fresh = _python(FRESH_VIEW, store_uri)
    assert fresh.stdout.split() == ["2", "0"], fresh.stderr


# --- (10) close-dead-runs tells a reused pid apart by its start time -------------------------------

RUN_OWNER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("owners") or client.get_experiment(
    client.create_experiment("owners"))
print(client.create_run(experiment.experiment_id).info.run_id, flush=True)
sys.stdin.read()  # stays alive until the test closes its stdin
"""


def test_close_dead_runs_closes_a_run_whose_pid_now_belongs_to_another_process(store_uri, data_dir):
    """A run made by a process that is gone, whose pid a later process now has (the recorded pid
    is rewritten to a live process's: what pid reuse looks like), is closed; the live process's
    own run, recorded with its real start time, is kept."""
    import psutil

    def start_owner():
        owner = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RUN_OWNER), store_uri],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        return owner, owner.stdout.readline().strip()

    gone, dead_run = start_owner()
    gone.stdin.close()
    gone.wait(timeout=60)
    live, live_run = start_owner()  # started after the first one ended: more than 1 s later
    try:
        with contextlib.closing(sqlite3.connect(data_dir / "owners.db")) as conn, conn:
            (recorded_start,) = conn.execute(
                "SELECT process_start FROM mlflow_run_owners WHERE run_id = ?", (dead_run,)
            ).fetchone()
            assert psutil.Process(live.pid).create_time() - recorded_start > 1.0
            conn.execute(
                "UPDATE mlflow_run_owners SET pid = ? WHERE run_id = ?", (live.pid, dead_run)
            )
        out = subprocess.run(
            [sys.executable, "-m", "mytracker.cli", "close-dead-runs", "--dir", str(data_dir)],
            capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            f"closed run {dead_run} in experiment 'owners'", "1 run(s) closed."
        ]
        client = MlflowClient(store_uri)
        assert client.get_run(dead_run).info.status == "KILLED"
        assert client.get_run(live_run).info.status == "RUNNING"
    finally:
        live.stdin.close()
        live.wait(timeout=60)


# --- (8) a data directory a group of OS users shares -----------------------------------------------

GROUP_MEMBER = """
import os, sys
os.umask(int(sys.argv[2], 8))
from mlflow import MlflowClient
client = MlflowClient(f"trackio://{sys.argv[1]}")
role, others_run = sys.argv[3], sys.argv[4]
own = client.create_experiment(f"made by {role}")
run_id = client.create_run(own).info.run_id
client.log_metric(run_id, "m", 1.0, step=0)
if others_run != "-":
    client.log_metric(others_run, "m", 2.0, step=1)  # into the other user's file
    other_experiment = client.get_run(others_run).info.experiment_id
    client.create_run(other_experiment, run_name=f"{role} in theirs")  # and its run folders
    client.rename_experiment(other_experiment, f"renamed by {role}")
print(run_id)
"""


def test_a_group_shared_directory_works_for_every_member_whatever_their_umask(traversable_tmp):
    """Two users (uids 65533 and 65534, umask 022 and 077) share a setgid, group-writable data
    directory through a common group: each makes experiments and runs, and writes into the
    other's experiment and run; everything mytracker made there is the group's to write."""
    group = 64999
    home = traversable_tmp / "home"
    home.mkdir()
    home.chmod(0o777)
    shared = traversable_tmp / "shared"
    shared.mkdir()
    os.chown(shared, 0, group)
    shared.chmod(0o2775)

    def as_user(uid: int, umask: str, role: str, others_run: str) -> str:
        result = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={group}",
             *AS_NOBODY[4:], sys.executable, "-c", textwrap.dedent(GROUP_MEMBER),
             str(shared), umask, role, others_run],
            env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()[-1]

    first_run = as_user(65533, "022", "A", "-")
    second_run = as_user(65534, "077", "B", first_run)
    as_user(65533, "022", "A2", second_run)

    client = MlflowClient(f"trackio://{shared}")
    for run_id in (first_run, second_run):
        assert [m.value for m in client.get_metric_history(run_id, "m")] == [1.0, 2.0]
    names = sorted(e.name for e in client.search_experiments())
    assert names == ["Default", "made by A2", "renamed by A2", "renamed by B"]
    not_shared = []
    for path in [shared, *shared.rglob("*")]:
        info = path.lstat()
        if info.st_gid != group or info.st_mode & 0o060 != 0o060:
            not_shared.append((str(path.relative_to(shared)), oct(info.st_mode), info.st_gid))
    assert not_shared == []
