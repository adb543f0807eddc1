"""The directory index: finding experiments, runs and models without opening every project file,
and never trusting it over the files (deleted, damaged, or behind another process's writes)."""

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow import MlflowClient

from mytracker.store._catalog import INDEX_FILE

N_EXPERIMENTS = 30


@pytest.fixture
def populated(store_uri):
    """30 experiments with one run each, made by this process."""
    client = MlflowClient(tracking_uri=store_uri)
    runs = {}
    for i in range(N_EXPERIMENTS):
        experiment_id = client.create_experiment(f"team-{i}")
        run = client.create_run(experiment_id, run_name=f"run-{i}")
        client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1))
        runs[f"team-{i}"] = run.info.run_id
    time.sleep(0.2)  # files changed in the last 0.1 s are always read again (see _catalog)
    client.search_experiments(max_results=1000)  # the listing records every changed file
    return runs


def _in_fresh_process(store_uri, body):
    """Run `body` against the store in a new interpreter; print what it prints, plus the number
    of project files it opened (counted through sqlite3.connect; `counting` counts others)."""
    script = textwrap.dedent(  # noqa: the counting wrapper is how "opened" is seen
        """
        import sqlite3, sys
        def counting(module, name):  # the project files (*.db) `module.name` is called on
            calls, real = [], getattr(module, name)
            def wrapper(target, *args, **kwargs):
                if str(target).endswith(".db"):
                    calls.append(str(target))
                return real(target, *args, **kwargs)
            setattr(module, name, wrapper)
            return calls
        opened = counting(sqlite3, "connect")
        from mlflow import MlflowClient
        client = MlflowClient(tracking_uri=sys.argv[1])
        """
    ) + textwrap.dedent(body) + "\nprint('OPENED', len(opened))\n"
    result = subprocess.run(
        [sys.executable, "-c", script, store_uri], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    return lines[:-1], int(lines[-1].split()[1])


def test_a_fresh_process_opens_only_the_files_it_needs(populated, store_uri):
    run_id = populated["team-7"]
    out, opened = _in_fresh_process(
        store_uri,
        f"""
        print(len(client.search_experiments(max_results=1000)))
        print(client.get_experiment_by_name("team-3").name)
        print(client.get_run("{run_id}").info.run_name)
        client.log_metric("{run_id}", "loss", 0.5, step=1)
        """,
    )
    assert out == [str(N_EXPERIMENTS + 1), "team-3", "run-7"]
    # the experiment looked up by name, and the run's file: nothing else
    assert opened <= 2, f"{opened} project files opened for a listing and two lookups"


def test_the_index_is_only_a_cache_deleted_or_damaged(populated, store_uri, data_dir):
    for damage in (lambda p: p.unlink(), lambda p: p.write_bytes(b"not a database" * 100)):
        for leftover in (f"{INDEX_FILE}-wal", f"{INDEX_FILE}-shm"):
            (data_dir / leftover).unlink(missing_ok=True)
        damage(data_dir / INDEX_FILE)
        out, _ = _in_fresh_process(
            store_uri,
            f"""
            print(len(client.search_experiments(max_results=1000)))
            print(client.get_run("{populated['team-5']}").info.run_name)
            """,
        )
        assert out == [str(N_EXPERIMENTS + 1), "run-5"]
    assert (data_dir / INDEX_FILE).exists()  # rebuilt


def test_another_process_writes_are_seen_at_once(populated, store_uri):
    """This process has read the directory (and so filled the index); another process renames
    an experiment, deletes one, creates one with a run: every answer here follows at once."""
    client = MlflowClient(tracking_uri=store_uri)
    assert len(client.search_experiments(max_results=1000)) == N_EXPERIMENTS + 1
    renamed_id = client.get_experiment_by_name("team-1").experiment_id
    out, _ = _in_fresh_process(
        store_uri,
        """
        client.rename_experiment(client.get_experiment_by_name("team-1").experiment_id, "renamed")
        client.delete_experiment(client.get_experiment_by_name("team-2").experiment_id)
        new = client.create_experiment("newcomer")
        print(client.create_run(new).info.run_id)
        """,
    )
    new_run_id = out[0]
    assert client.get_experiment(renamed_id).name == "renamed"
    assert client.get_experiment_by_name("team-1") is None
    assert client.get_experiment_by_name("team-2").lifecycle_stage == "deleted"
    names = {e.name for e in client.search_experiments(max_results=1000)}
    assert "newcomer" in names and "team-2" not in names and "renamed" in names
    assert client.get_run(new_run_id).info.experiment_id == client.get_experiment_by_name(
        "newcomer"
    ).experiment_id


def test_a_deleted_project_file_leaves_the_listing(populated, store_uri, data_dir):
    client = MlflowClient(tracking_uri=store_uri)
    assert client.get_experiment_by_name("team-9") is not None
    (data_dir / "team-9.db").unlink()
    for suffix in ("-wal", "-shm"):
        (data_dir / f"team-9.db{suffix}").unlink(missing_ok=True)
    assert client.get_experiment_by_name("team-9") is None
    assert len(client.search_experiments(max_results=1000)) == N_EXPERIMENTS


def test_a_read_only_index_still_answers(populated, store_uri, data_dir):
    """Where the index cannot be written (another user's file, say), lookups still work."""
    os.chmod(data_dir / INDEX_FILE, 0o444)
    try:
        out, _ = _in_fresh_process(
            store_uri, f'print(client.get_run("{populated["team-4"]}").info.run_name)'
        )
        assert out == ["run-4"]
    finally:
        os.chmod(data_dir / INDEX_FILE, 0o644)


TRACKIO_ON_A_NEW_FILE = """
import sys
import trackio
from trackio.sqlite_storage import SQLiteStorage

trackio.init(project=sys.argv[1], name="from-trackio", auto_log_cpu=False, auto_log_gpu=False)
trackio.log({"acc": 0.5})
trackio.log({"acc": 0.75})
trackio.finish()
print(sorted(SQLiteStorage.get_projects()), SQLiteStorage.get_runs(sys.argv[1]),
      [row["acc"] for row in SQLiteStorage.get_logs(sys.argv[1], "from-trackio")])
"""


def _schema_and_content(path):
    conn = sqlite3.connect(path)
    try:
        pragmas = {
            name: conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_size", "journal_mode", "user_version", "auto_vacuum", "encoding",
                         "application_id", "integrity_check")
        }
        schema = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
        content = {
            table: sorted(conn.execute(f"SELECT * FROM {table}"))
            for table in ("mlflow_experiment", "mlflow_experiment_tags", "project_metadata")
        }
        content["migrations"] = sorted(conn.execute("SELECT name FROM mytracker_migrations"))
        return pragmas, schema, content
    finally:
        conn.close()


def test_a_new_experiment_file_is_what_the_step_by_step_way_makes(data_dir, store_uri, tmp_path):
    """`create_experiment` writes a copy of a schema made once per process (`write_new_project`);
    the file as placed must be the one made statement by statement, and Trackio's own API must
    read and write it."""
    from mytracker.store._db import ProjectDB, write_new_project

    fields = ("7", "made-fast", "/artifacts/7", 1_700_000_000_000, {"team": "a"})
    write_new_project(tmp_path / "fast.db", *fields)
    header = (tmp_path / "fast.db").read_bytes()[:100]  # before any connection could change it
    slow = ProjectDB(tmp_path / "slow.db", create=True)
    slow.create_experiment(*fields)
    slow.close()
    # 8 KiB pages and WAL (read/write versions 2), as the step-by-step file's header says:
    assert header[16:20] == (tmp_path / "slow.db").read_bytes()[16:20] == b"\x20\x00\x02\x02"
    assert _schema_and_content(tmp_path / "fast.db") == _schema_and_content(tmp_path / "slow.db")

    client = MlflowClient(tracking_uri=store_uri)
    experiment_id = client.create_experiment("made-fast", tags={"team": "a"})
    out = subprocess.run(
        [sys.executable, "-c", TRACKIO_ON_A_NEW_FILE, "made-fast"],
        env={**os.environ, "TRACKIO_DIR": str(data_dir)}, capture_output=True, text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['made-fast'] ['from-trackio'] [0.5, 0.75]"
    runs = client.search_runs([experiment_id])
    assert [(r.info.run_name, r.data.metrics) for r in runs] == [("from-trackio", {"acc": 0.75})]


def test_an_unchanged_directory_is_listed_without_looking_at_its_files(populated, store_uri):
    """Once the index matches the directory, a listing reads the index alone: no project file
    is opened or even `stat`ed, however many there are (a call costs what its own data costs)."""
    out, opened = _in_fresh_process(
        store_uri,
        """
        import os, time
        client.search_experiments(max_results=1000)  # the index learns this process's opening
        time.sleep(0.1)
        stats = counting(os, "stat")
        for _ in range(3):
            print(len(client.search_experiments(max_results=1000)))
        print("STATS", len(stats))
        """,
    )
    assert out == [str(N_EXPERIMENTS + 1)] * 3 + ["STATS 0"]
    assert opened == 0


def test_a_file_replaced_under_its_name_is_read_again(populated, store_uri, data_dir, tmp_path):
    """A project file replaced by another (a backup moved into place) is a new file: the listing
    reads it, though the directory's other files are trusted."""
    client = MlflowClient(tracking_uri=store_uri)
    assert "team-3" in {e.name for e in client.search_experiments(max_results=1000)}
    copy = tmp_path / "team-3-restored.db"
    source, restored = sqlite3.connect(data_dir / "team-3.db"), sqlite3.connect(copy)
    source.backup(restored)
    source.close()
    restored.execute("UPDATE mlflow_experiment SET name = 'team-3-restored'")
    restored.commit()
    restored.close()
    os.replace(copy, data_dir / "team-3.db")
    names = {e.name for e in client.search_experiments(max_results=1000)}
    assert "team-3-restored" in names and "team-3" not in names


RENAMER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
ids = [client.get_experiment_by_name(f"team-{i}").experiment_id for i in range(6)]
for round_no in range(15):
    for i, experiment_id in enumerate(ids):
        client.rename_experiment(experiment_id, f"team-{i}-v{round_no}")
        client.set_experiment_tag(experiment_id, "round", str(round_no))
print("done")
"""

LISTER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
while True:
    names = sorted(e.name for e in client.search_experiments(max_results=1000))
    if sys.stdin.readline().strip() == "stop":
        break
names = sorted(
    (e.name, e.tags.get("round")) for e in client.search_experiments(max_results=1000)
    if e.name.startswith("team-") and "-v" in e.name
)
print(names)
"""


def test_listings_racing_another_process_changes_end_with_the_last_change(populated, store_uri):
    """One process renames and tags experiments while another lists them as fast as it can:
    a listing racing a change may record what it read before the change, and must not win over
    the change; the first listing after the last change shows it."""
    lister = subprocess.Popen(
        [sys.executable, "-c", LISTER, store_uri], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    renamer = subprocess.run(
        [sys.executable, "-c", RENAMER, store_uri], capture_output=True, text=True, timeout=300
    )
    assert renamer.returncode == 0, renamer.stderr
    out, err = lister.communicate("\n" * 2000 + "stop\n", timeout=120)
    assert lister.returncode == 0, err
    assert out.strip() == str([(f"team-{i}-v14", "14") for i in range(6)])


FROZEN_RENAMER = """
import sys, time
from mlflow import MlflowClient
from mytracker.store._catalog import Catalog

def killed_before_recording(self, path, mark=None):
    print("renamed", flush=True)
    time.sleep(600)  # killed here: the file holds the new name, the index does not

Catalog.refresh = killed_before_recording
client = MlflowClient(sys.argv[1])
client.rename_experiment(client.get_experiment_by_name("team-5").experiment_id, "renamed")
"""


def test_a_change_cut_short_by_a_kill_is_seen(populated, store_uri):
    """A process killed between changing an experiment and recording the change in the index
    leaves its mark: other processes read that file again, and the mark goes once the process
    is known to be gone."""
    client = MlflowClient(tracking_uri=store_uri)
    assert "team-5" in {e.name for e in client.search_experiments(max_results=1000)}
    frozen = subprocess.Popen(
        [sys.executable, "-c", FROZEN_RENAMER, store_uri], stdout=subprocess.PIPE, text=True
    )
    try:
        assert frozen.stdout.readline().strip() == "renamed"
        names = {e.name for e in client.search_experiments(max_results=1000)}
        assert "renamed" in names and "team-5" not in names
    finally:
        frozen.kill()
        frozen.wait()
    for _ in range(2):
        names = {e.name for e in client.search_experiments(max_results=1000)}
        assert "renamed" in names and "team-5" not in names
    out, _ = _in_fresh_process(
        store_uri, "print(sorted(e.name for e in client.search_experiments(max_results=1000)))"
    )
    assert "'renamed'" in out[0] and "'team-5'" not in out[0]


def test_a_file_from_before_migration_0006_is_upgraded_and_reads_the_same(store_uri, data_dir):
    """Files made before migration 0006 carry an index of the latest metric values by (key,
    value); the first process that opens one for writing drops it, and every answer that read
    through that table stays the same."""
    from mlflow.entities import Metric

    client = MlflowClient(tracking_uri=store_uri)
    experiment_id = client.create_experiment("older")
    run_ids = []
    for name in ("a", "b"):
        run_id = client.create_run(experiment_id, run_name=name).info.run_id
        for step in range(3):
            loss = (1.0 if name == "a" else 2.0) / (step + 1)
            client.log_batch(run_id, metrics=[Metric("loss", loss, 1000 + step, step),
                                              Metric("acc", step / 3, 1000 + step, step)])
        run_ids.append(run_id)
    reads = f"""
    for run_id in {run_ids!r}:
        print(sorted(client.get_run(run_id).data.metrics.items()))
        print([(m.step, m.value) for m in client.get_metric_history(run_id, "loss")])
    found = client.search_runs([{experiment_id!r}], "metrics.loss < 0.8", order_by=["metrics.loss DESC"])
    print([r.info.run_name for r in found])
    """
    expected, _ = _in_fresh_process(store_uri, reads)

    conn = sqlite3.connect(data_dir / "older.db")
    with conn:  # the file as mytracker made it before 0006
        conn.execute("CREATE INDEX mlflow_latest_metrics_key ON mlflow_latest_metrics(key, value)")
        conn.execute("DELETE FROM mytracker_migrations WHERE name = '0006_drop_latest_metrics_key'")
    conn.close()

    upgraded, _ = _in_fresh_process(store_uri, reads)
    assert upgraded == expected
    assert expected[-1] == "['b', 'a']"
    conn = sqlite3.connect(data_dir / "older.db")
    try:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        migrations = {row[0] for row in conn.execute("SELECT name FROM mytracker_migrations")}
    finally:
        conn.close()
    assert "mlflow_latest_metrics_key" not in indexes
    assert "0006_drop_latest_metrics_key" in migrations
