"""Asynchronous logging on trackio:// (``synchronous=False``, ``MLFLOW_ENABLE_ASYNC_LOGGING``):
every point lands after ``end_run`` and after a normal exit; a SIGKILL loses at most the last
half second; a failed batch is logged and fails only its own caller."""

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

KEYS = ("loss", "accuracy", "learning_rate")
SIGKILL_WINDOW_S = 0.5  # docs/reliability.md

LOOP = """
import sys, time, mlflow
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("async")
run = mlflow.start_run()
print(run.info.run_id, flush=True)
steps = int(sys.argv[3])
for step in range(steps if steps else 10**9):
    mlflow.log_metrics({"loss": 1 / (step + 1), "accuracy": step / 1e4, "learning_rate": 0.1},
                       step=step)
    if not steps:  # the SIGKILL test: what returned, and when
        print(step, time.time(), flush=True)
if sys.argv[2] == "end_run":
    mlflow.end_run()
# "exit": a normal interpreter exit with the run still open
"""


def _loop(store_uri: str, how: str, steps: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LOOP), store_uri, how, str(steps)],
        env={**os.environ, "MLFLOW_ENABLE_ASYNC_LOGGING": "true"},
        stdout=subprocess.PIPE, text=True,
    )


def _steps(store_uri: str, run_id: str) -> dict[str, list[int]]:
    client = MlflowClient(store_uri)
    return {key: sorted(m.step for m in client.get_metric_history(run_id, key)) for key in KEYS}


@pytest.mark.parametrize("how", ["end_run", "exit"])
def test_every_point_is_written_by_end_run_or_a_normal_exit(store_uri, how):
    proc = _loop(store_uri, how, 3000)
    run_id = proc.stdout.readline().strip()
    assert proc.wait(timeout=120) == 0
    assert _steps(store_uri, run_id) == {key: list(range(3000)) for key in KEYS}


def test_sigkill_loses_at_most_the_last_half_second(store_uri, data_dir):
    proc = _loop(store_uri, "sigkill", 0)
    run_id = proc.stdout.readline().strip()
    # Well into the loop (2 s), with batches written and more queued: each line is a step
    # that returned, and when.
    returned = [proc.stdout.readline().split()]
    while float(returned[-1][1]) < float(returned[0][1]) + 2:
        returned.append(proc.stdout.readline().split())
    killed_at = time.time()
    proc.send_signal(signal.SIGKILL)
    returned += [line.split() for line in proc.stdout.read().splitlines()]
    proc.wait(timeout=30)
    returned = [fields for fields in returned if len(fields) == 2]  # the kill may cut a line

    stored = _steps(store_uri, run_id)
    assert stored["loss"] == stored["accuracy"] == stored["learning_rate"]  # whole steps
    assert stored["loss"] == list(range(len(stored["loss"])))  # in order: no holes
    deadline = killed_at - SIGKILL_WINDOW_S
    before_window = [int(step) for step, at in returned if float(at) < deadline]
    assert before_window, "the loop was too slow to test the window"
    assert set(before_window) <= set(stored["loss"])
    assert len(stored["loss"]) < len(returned)  # a real kill, not a finished loop
    with sqlite3.connect(data_dir / "async.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_flush_writes_what_is_queued(tracking):
    mlflow.set_experiment("flush")
    with mlflow.start_run() as run:
        for step in range(500):
            mlflow.log_metric("loss", 1 / (step + 1), step=step, synchronous=False)
        mlflow.flush_async_logging()
        history = MlflowClient().get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(500))


def test_a_failed_batch_is_logged_and_fails_only_its_caller(tracking, caplog):
    mlflow.set_experiment("failures")
    client = MlflowClient()
    with mlflow.start_run() as run:
        run_id = run.info.run_id
        good = client.log_batch(
            run_id, metrics=[Metric("loss", 0.5, 1_700_000_000_000, 0)],
            params=[Param("lr", "0.1")], synchronous=False,
        )
        changed = client.log_batch(run_id, params=[Param("lr", "0.2")], synchronous=False)
        missing = client.log_batch("0" * 32, metrics=[Metric("loss", 1.0, 0, 0)],
                                   synchronous=False)
        later = client.log_batch(
            run_id, metrics=[Metric("loss", 0.25, 1_700_000_000_001, 1)], synchronous=False
        )
        with caplog.at_level(logging.ERROR):
            mlflow.flush_async_logging()
        good.wait()
        later.wait()
        with pytest.raises(mlflow.MlflowException, match="Changing param values"):
            changed.wait()
        with pytest.raises(mlflow.MlflowException, match="not found"):
            missing.wait()
    assert "Changing param values" in caplog.text and "not found" in caplog.text
    stored = client.get_run(run_id)
    assert stored.data.params == {"lr": "0.1"}
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (0, 0.5), (1, 0.25)
    ]
