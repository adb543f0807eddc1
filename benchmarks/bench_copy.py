"""Benchmark: copy 1,000,000 metric points from MLflow's SQLite store into ``trackio://``.

    /work/venv/bin/python benchmarks/bench_copy.py [--points 1000000] [--runs 20] [--keys 5]

Reports the time split between reading the source and writing the destination, and compares the
copy's write rate with the store's own raw ``log_batch`` rate (1,000-point batches of the same
shape) measured in the same process. Target: the copy writes at no less than half that rate.

The source runs are created with MlflowClient; their metric rows are inserted with MLflow's own
SQLAlchemy models in bulk (MLflow's ``log_batch`` would need several minutes for 1,000,000).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def make_source(directory: str, points: int, runs: int, keys: int) -> tuple[str, float]:
    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import insert

    uri = f"sqlite:///{directory}/mlflow.db"
    store = SqlAlchemyStore(uri, os.path.join(directory, "artifacts"))
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("bench")
    steps = points // (runs * keys)
    base = 1_700_000_000_000
    started = time.perf_counter()
    for r in range(runs):
        run_id = client.create_run(experiment_id, start_time=base, run_name=f"run-{r}").info.run_id
        client.log_param(run_id, "lr", "0.01")
        rows = [
            {"run_uuid": run_id, "key": f"train/metric_{k}", "value": (step * 7 + k) / 13.0,
             "timestamp": base + step * 10, "step": step, "is_nan": False}
            for step in range(steps)
            for k in range(keys)
        ]
        with store.ManagedSessionMaker(read_only=False) as session:
            for i in range(0, len(rows), 50_000):
                session.execute(insert(SqlMetric), rows[i : i + 50_000])
            session.execute(insert(SqlLatestMetric), rows[-keys:])
        client.set_terminated(run_id, "FINISHED", base + steps * 10)
    store.engine.dispose()
    return uri, time.perf_counter() - started


def raw_log_batch_rate(directory: str, points: int, keys: int) -> float:
    """Points per second through TrackioStore.log_batch, 1,000 points (200 steps x 5 keys) per
    call, as MlflowClient.log_batch sends them."""
    from mlflow.entities import Metric

    from mytracker.store._store import TrackioStore

    store = TrackioStore(f"trackio://{directory}")
    experiment_id = store.create_experiment("raw")
    run_id = store.create_run(experiment_id, "bench", 1_700_000_000_000, [], "raw").info.run_id
    per_batch = 1000 // keys
    batches = [
        [
            Metric(f"train/metric_{k}", (step * 7 + k) / 13.0, 1_700_000_000_000 + step * 10, step)
            for step in range(b * per_batch, (b + 1) * per_batch)
            for k in range(keys)
        ]
        for b in range(points // 1000)
    ]
    started = time.perf_counter()
    for batch in batches:
        store.log_batch(run_id, metrics=batch, params=[], tags=[])
    return len(batches) * 1000 / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keys", type=int, default=5)
    parser.add_argument("--raw-points", type=int, default=200_000)
    args = parser.parse_args()

    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    import mlflow

    from mytracker._copy import copy_store

    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        source, generate_s = make_source(tmp, args.points, args.runs, args.keys)
        raw_rate = raw_log_batch_rate(os.path.join(tmp, "raw"), args.raw_points, args.keys)
        summary = copy_store(source, f"trackio://{tmp}/trackio")
        write_rate = summary.metric_points / summary.write_s
        raw_again = raw_log_batch_rate(os.path.join(tmp, "raw2"), args.raw_points, args.keys)
        raw = max(raw_rate, raw_again)
        print(f"# bench_copy: {summary.metric_points:,} points, {args.runs} runs x {args.keys} keys")
        print(f"python {platform.python_version()}, mlflow {mlflow.__version__}, "
              f"{platform.machine()}, {os.cpu_count()} CPUs")
        print(f"source generation (not timed below): {generate_s:.1f} s")
        print(f"copy total:      {summary.elapsed_s:6.2f} s  "
              f"({summary.metric_points / summary.elapsed_s:,.0f} points/s end to end)")
        print(f"  reading source: {summary.read_s:6.2f} s  "
              f"({summary.metric_points / summary.read_s:,.0f} points/s)")
        print(f"  writing dest:   {summary.write_s:6.2f} s  ({write_rate:,.0f} points/s)")
        print(f"raw TrackioStore.log_batch (1,000-point batches, best of 2 x "
              f"{args.raw_points:,}): {raw:,.0f} points/s  "
              f"(runs: {raw_rate:,.0f}, {raw_again:,.0f})")
        ratio = write_rate / raw
        print(f"copy write rate / raw log_batch rate: {ratio:.2f} "
              f"(target >= 0.50: {'PASS' if ratio >= 0.5 else 'FAIL'})")
        again = copy_store(source, f"trackio://{tmp}/trackio")
        print(f"second copy (nothing new): {again.elapsed_s:.2f} s, "
              f"{again.metric_points} points written, {again.runs_unchanged} runs unchanged")
        return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
