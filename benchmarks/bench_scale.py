#!/usr/bin/env python
"""A metric write on a big run costs what the batch costs: ``trackio://`` against MLflow's own
SQLite store, and against the same batch on an empty run, in one run.

    python benchmarks/bench_scale.py                    # a run of 1,000,000 points
    python benchmarks/bench_scale.py --points 200000    # smaller, a smoke test

Each store first gets one run of ``--points`` points of one key (1,000 per batch, steps and
timestamps increasing). Then, interleaved in random order, each round times one ``log_batch`` of
1,000 new points (new steps) on that run, and on a fresh empty run, in three timestamp patterns:

  (a) increasing: timestamps after everything stored;
  (b) repeated:   one timestamp for all 1,000 points, the run's last one (an epoch stamped once);
  (c) older:      timestamps before everything stored (a replay or a copy).

Targets (issue 12): on the big run, each pattern at least 10x faster than the SQLite store on its
big run, and within 1.5x of the same batch on an empty run. Also printed: the first page of
``get_metric_history`` (1,000 points) on the big run and on a 1,000-point run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings

os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

T0 = 1_700_000_000_000
BATCH = 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    tmp = tempfile.mkdtemp(prefix="bench-scale-")
    clients = {
        "trackio": MlflowClient(tracking_uri=f"trackio://{tmp}/trackio"),
        "sqlite": MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db"),
    }
    print(f"python {platform.python_version()}, {os.cpu_count()} cores; run of {args.points:,} "
          f"points, {args.rounds} rounds; command: python benchmarks/bench_scale.py "
          f"{' '.join(sys.argv[1:])}".rstrip())

    big, experiment = {}, {}
    for name, client in clients.items():
        experiment[name] = client.create_experiment("scale")
        big[name] = client.create_run(experiment[name]).info.run_id
        started = time.perf_counter()
        for first in range(0, args.points, BATCH):
            client.log_batch(big[name], metrics=[
                Metric("loss", 1.0 / (i + 1), T0 + 1000 + i, i)
                for i in range(first, min(first + BATCH, args.points))
            ])
        print(f"  built the {name} run in {time.perf_counter() - started:.1f} s")

    last_ts = T0 + 1000 + args.points - 1
    next_step = {name: args.points for name in clients}

    def batch(pattern: str, first_step: int, round_no: int) -> list:
        if pattern == "a":
            stamps = [last_ts + 1 + round_no * BATCH + i for i in range(BATCH)]
        elif pattern == "b":
            stamps = [last_ts] * BATCH
        else:
            stamps = [T0 - 10_000 * (round_no + 1) + i for i in range(BATCH)]
        return [Metric("loss", 0.5, stamps[i], first_step + i) for i in range(BATCH)]

    timings: dict[tuple, list[float]] = {}
    cases = [(p, store, where) for p in "abc" for store, where in
             (("trackio", "big"), ("trackio", "empty"), ("sqlite", "big"))]
    rng = random.Random(0)
    for round_no in range(args.rounds + 1):  # the first round is a warm-up
        rng.shuffle(cases)
        for pattern, store, where in cases:
            client = clients[store]
            if where == "big":
                run_id, first = big[store], next_step[store]
                next_step[store] += BATCH
            else:
                run_id, first = client.create_run(experiment[store]).info.run_id, 0
            metrics = batch(pattern, first, round_no)
            started = time.perf_counter()
            client.log_batch(run_id, metrics=metrics)
            elapsed = time.perf_counter() - started
            if round_no:
                timings.setdefault((pattern, store, where), []).append(elapsed)

    def median_ms(key) -> float:
        return statistics.median(timings[key]) * 1000

    names = {"a": "(a) increasing", "b": "(b) repeated", "c": "(c) older"}
    failed = 0
    print(f"\nlog_batch of {BATCH:,} points, median ms (min-max)")
    print(f"{'pattern':<16}{'trackio big':>22}{'trackio empty':>22}{'sqlite big':>22}"
          f"{'sqlite/trackio':>16}{'big/empty':>11}")
    for pattern in "abc":
        cells = []
        for store, where in (("trackio", "big"), ("trackio", "empty"), ("sqlite", "big")):
            values = sorted(timings[(pattern, store, where)])
            cells.append(f"{median_ms((pattern, store, where)):.1f} "
                         f"({values[0] * 1000:.1f}-{values[-1] * 1000:.1f})")
        faster = median_ms((pattern, "sqlite", "big")) / median_ms((pattern, "trackio", "big"))
        growth = median_ms((pattern, "trackio", "big")) / median_ms((pattern, "trackio", "empty"))
        ok = faster >= 10 and growth <= 1.5
        failed += not ok
        print(f"{names[pattern]:<16}{cells[0]:>22}{cells[1]:>22}{cells[2]:>22}"
              f"{faster:>15.1f}x{growth:>10.2f}x  {'PASS' if ok else 'FAIL'}")

    small = clients["trackio"].create_run(experiment["trackio"]).info.run_id
    clients["trackio"].log_batch(small, metrics=[
        Metric("loss", 1.0, T0 + i, i) for i in range(BATCH)])
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store(f"trackio://{tmp}/trackio")
    page = {}
    for label, run_id in (("big run", big["trackio"]), ("1,000-point run", small)):
        times = []
        for _ in range(7):
            started = time.perf_counter()
            store.get_metric_history(run_id, "loss", max_results=BATCH)
            times.append(time.perf_counter() - started)
        page[label] = statistics.median(times) * 1000
    print(f"\nget_metric_history first page of {BATCH:,}: big run {page['big run']:.1f} ms, "
          f"1,000-point run {page['1,000-point run']:.1f} ms "
          f"({page['big run'] / page['1,000-point run']:.2f}x)")
    print(f"\n{3 - failed} of 3 log_batch targets met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
