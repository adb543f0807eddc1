"""Metric points with the timestamp patterns callers really send, against MLflow's own SQLite
store: one timestamp for a whole epoch, points older than what is stored, step 0 for every point,
retried batches, a step's keys split over calls. Every history and latest value must match.

The store looks up only the batch's own (step, timestamp) pairs, so these shapes also cost what
the batch costs (benchmarks/bench_scale.py measures that); here we check the answers."""

import math

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

T0 = 1_700_000_000_000


def _patterns():
    """(name, list of batches), each batch a list of (key, value, timestamp_ms, step)."""
    epoch_stamp = [[("loss", 1.0 / (i + 1), T0, i) for i in range(j, j + 50)] for j in (0, 50, 100)]
    older = [
        [("loss", float(i), T0 + 10_000 + i, i) for i in range(100)],
        [("loss", float(-i), T0 + i, 100 + i) for i in range(100)],  # older than stored, new steps
        [("loss", 7.0, T0 + 5, 3)],  # old timestamp, a step already used
    ]
    step_zero = [[("acc", i / 10, T0 + i, 0) for i in range(j, j + 40)] for j in (0, 40)]
    retried = [[("a", 1.0, T0, 0), ("b", 2.0, T0, 0)]] * 3
    split = [
        [("a", 1.0, T0, 1)],
        [("b", 2.0, T0, 1), ("a", 1.0, T0, 1)],  # the same point again, and a new key
        [("a", 3.0, T0, 1)],  # a second value for a key at the same step and timestamp
        # (No NaN here: MLflow's SQLite store before 3.17 fails on a repeated NaN point.)
        [("c", 4.0, T0, 1)],
        [("c", 4.0, T0, 1), ("d", math.inf, T0 + 1, 1)],
    ]
    mixed = [
        [("m", float(i % 7), T0 + (i * 37) % 100, i % 10) for i in range(300)],
        [("m", float(i % 7), T0 + (i * 37) % 100, i % 10) for i in range(150, 450)],
    ]
    # A step's keys logged moments apart join one Trackio row; MLflow keeps each point's time.
    apart = [
        [("p", 0.9, T0, 0), ("r", 0.8, T0, 0), ("s", 0.7, T0 + 850, 0)],  # sklearn's shape
        [("score", 0.875, T0 + 900, 0)],  # a later call at the same step
        [("score", 0.875, T0 + 900, 0), ("p", 0.9, T0, 0)],  # retried: nothing new
        [("s", 0.5, T0, 0)],  # a joined key at its row's own time: another point
        [("s", 0.6, T0 + 850, 0)],  # a second value at a joined point's time
        [("loss", float(i), T0 + 1000 + 10 * i, i) for i in range(1, 6)],  # a loop: loss, then
        [("acc", i / 10, T0 + 1005 + 10 * i, i) for i in range(1, 6)],  # acc in another call
        [("acc", 0.0, T0 + 1100, 3), ("n", math.nan, T0 + 1101, 3)],  # acc again: its own row
        [("late", 1.0, T0 + 60_000, 0), ("early", 2.0, T0 - 5, 0)],  # too late, too early
        # An epoch metric at step 1 (as Lightning logs them): rows of later steps are stamped
        # after step 1's row, so joining it would show the point out of time order.
        [("epoch_loss", 0.5, T0 + 1060, 1)],
    ]
    # One batch as `mytracker copy` sends a history, sorted by time: a step's keys at two times.
    sorted_history = [sorted(
        [("loss", 1.0 / (s + 1), T0 + 10 * s, s) for s in range(4)]
        + [("grad", float(s), T0 + 5 + s, s) for s in range(3)],
        key=lambda p: (p[2], p[3], p[0]),
    )]
    return [
        ("a step's keys moments apart", apart),
        ("a history sorted by time", sorted_history),
        ("one timestamp per epoch", epoch_stamp),
        ("older than stored", older),
        ("step zero always", step_zero),
        ("retried batch", retried),
        ("keys split over calls", split),
        ("repeated and out of order", mixed),
    ]


def _clamped(value):
    if math.isnan(value):
        return "nan"
    return max(min(value, 1.7976931348623157e308), -1.7976931348623157e308)


def _stored(uri, batches):
    client = MlflowClient(tracking_uri=uri)
    # Started at T0: the empty row that shows a new run in Trackio sits at (step 0, T0), where
    # the patterns log too.
    run_id = client.create_run(client.create_experiment("patterns"), start_time=T0).info.run_id
    for batch in batches:
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in batch])
    keys = sorted({k for batch in batches for k, *_ in batch})
    history = {
        key: [
            (m.timestamp, m.step, _clamped(m.value))
            for m in client.get_metric_history(run_id, key)
        ]
        for key in keys
    }
    latest = {
        m.key: (m.timestamp, m.step, _clamped(m.value))
        for m in client.get_run(run_id).data._metric_objs
    }
    store = client._tracking_client.store
    pages = {}
    for key in keys:
        pages[key], token = [], None
        while True:
            page = store.get_metric_history(run_id, key, max_results=2, page_token=token)
            pages[key].append([(m.timestamp, m.step, _clamped(m.value)) for m in page])
            token = page.token
            if not token:
                break
    return history, latest, pages


@pytest.mark.parametrize("name,batches", _patterns(), ids=[p[0] for p in _patterns()])
def test_same_points_as_mlflow_sqlite_store(name, batches, tmp_path):
    expected = _stored(f"sqlite:///{tmp_path / 'mlflow.db'}", batches)
    assert _stored(f"trackio://{tmp_path / 'trackio'}", batches) == expected


def test_one_timestamp_per_epoch_stays_one_row_per_step(tmp_path):
    """A step's keys logged with one shared timestamp land in one Trackio row per step, as the
    dashboard draws them, however many steps already share that timestamp."""
    import sqlite3

    client = MlflowClient(tracking_uri=f"trackio://{tmp_path}")
    experiment_id = client.create_experiment("epoch")
    run_id = client.create_run(experiment_id).info.run_id
    for step in range(300):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), timestamp=T0, step=step)
        client.log_metric(run_id, "acc", step / 300, timestamp=T0, step=step)
    rows = sqlite3.connect(tmp_path / "epoch.db").execute(
        "SELECT count(*), count(DISTINCT step) FROM metrics WHERE run_id = ? AND metrics != '{}'",
        (run_id,),
    ).fetchone()
    assert rows == (300, 300)
    assert len(client.get_metric_history(run_id, "acc")) == 300


def test_a_steps_keys_logged_moments_apart_stay_one_row_per_step(tmp_path):
    """Trackio's Runs table counts rows as steps: keys of one step logged in separate calls
    moments apart make one row, as one `trackio.log` call would; much later, after another row,
    or a key the row already holds, starts another (MLflow's answers: test_same_points_as_mlflow_sqlite_store)."""
    import sqlite3

    batches = dict(_patterns())["a step's keys moments apart"]
    client = MlflowClient(tracking_uri=f"trackio://{tmp_path}")
    run_id = client.create_run(client.create_experiment("apart")).info.run_id
    for batch in batches:
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in batch])
    rows = sqlite3.connect(tmp_path / "apart.db").execute(
        "SELECT step, metrics FROM metrics WHERE run_id = ? ORDER BY id", (run_id,)
    ).fetchall()
    assert rows == [
        (0, '{"p":0.9,"r":0.8,"s":0.7,"score":0.875}'),
        (0, '{"s":0.5}'),
        (0, '{"s":0.6}'),
        *[(i, f'{{"loss":{float(i)},"acc":{i / 10}}}') for i in range(1, 6)],
        (3, '{"acc":0.0,"n":"NaN"}'),
        (0, '{"late":1.0}'),
        (0, '{"early":2.0}'),
        (1, '{"epoch_loss":0.5}'),
    ]
