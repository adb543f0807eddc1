#!/usr/bin/env python
"""A training step, as users write the loop: what one step of 3 metrics costs through MLflow on
``trackio://`` and on MLflow's own ``sqlite:///``, synchronous and asynchronous, against
Trackio's own ``trackio.log`` (and W&B offline, if ``wandb`` is importable), in one run.

    python benchmarks/bench_loop.py                 # 5 rounds, 5,000 steps (sqlite: 300)
    python benchmarks/bench_loop.py --quick         # 2 rounds, 1,000 steps: a smoke test
    python benchmarks/bench_loop.py --profile       # cProfile of 100 synchronous trackio:// steps

Every variant runs in its own child interpreter (a fresh data directory; ``TRACKIO_DIR`` set
before Trackio is imported), one child per variant per round, the variants of a round in a new
random order, so load from other processes hits all alike. A child times each step (the call
only), the whole run (start, steps, end), and the cost per step: from the first step to the end
of the run (``end_run`` or ``trackio.finish()``, which write what was queued), over the steps.
Then it reads every point back.

Variants:
  trackio-sync    mlflow.log_metrics({...}, step=i) on trackio://, MLFLOW_ENABLE_ASYNC_LOGGING=false
  trackio-async   the same with MLFLOW_ENABLE_ASYNC_LOGGING=true (asynchronous logging)
  trackio-store   the trackio:// store's own log_batch of the step's 3 Metric objects
  sqlite-sync     mlflow.log_metrics on sqlite:///, synchronous
  sqlite-async    the same, asynchronous
  trackio.log     trackio.init / trackio.log({...}) / trackio.finish() (queued by Trackio)
  wandb-offline   wandb.init(mode="offline") / wandb.log / finish (only if wandb is importable)

Targets (issue 17), from the medians of one run:
  - trackio-store step <= 3x trackio.log's cost per step (it only queues; finish() writes)
  - trackio-sync step <= 1.5x trackio-store step
  - trackio-async cost per step (the final flush counts) <= 2x trackio.log's cost per step
  - every variant reads back every point it logged
MLflow's usage telemetry is off in every child (MLFLOW_DISABLE_TELEMETRY=true), as
``mytracker.autolog()`` sets it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

KEYS = ("loss", "accuracy", "learning_rate")
PROFILED_STEPS = 100  # --profile: cProfile of these steps in the middle of the loop
MLFLOW_VARIANTS = {
    "trackio-sync": ("trackio", False),
    "trackio-async": ("trackio", True),
    "sqlite-sync": ("sqlite", False),
    "sqlite-async": ("sqlite", True),
}


def _values(step: int) -> dict[str, float]:
    return {"loss": 1.0 / (step + 1), "accuracy": step / (step + 100), "learning_rate": 0.001}


# --- one variant, in a child interpreter ----------------------------------------------------------


def _child(variant: str, steps: int, data_dir: str, profile: bool) -> dict:
    per_step = []
    clock = time.perf_counter
    if variant == "trackio.log":
        os.environ["TRACKIO_DIR"] = data_dir  # read once, when trackio is imported
        import trackio
        from trackio.sqlite_storage import SQLiteStorage

        start = clock()
        trackio.init(project="bench", name="loop")
        first = clock()
        for step in range(steps):
            t = clock()
            trackio.log(_values(step))
            per_step.append(clock() - t)
        trackio.finish()
        end = clock()
        logs = SQLiteStorage.get_logs("bench", "loop")
        stored = sum(1 for row in logs for key in KEYS if key in row)
    elif variant == "wandb-offline":
        import wandb

        start = clock()
        run = wandb.init(mode="offline", dir=data_dir, project="bench")
        first = clock()
        for step in range(steps):
            t = clock()
            wandb.log(_values(step), step=step)
            per_step.append(clock() - t)
        run.finish()
        end = clock()
        stored = None  # W&B offline keeps a binary log for `wandb sync`: not read back here
    else:
        import mlflow
        from mlflow import MlflowClient

        scheme, _ = MLFLOW_VARIANTS.get(variant, ("trackio", False))
        uri = f"trackio://{data_dir}" if scheme == "trackio" else f"sqlite:///{data_dir}/mlflow.db"
        os.makedirs(data_dir, exist_ok=True)
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench")
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
        start = clock()
        run = mlflow.start_run()
        run_id = run.info.run_id
        first = clock()
        if variant == "trackio-store":
            from mlflow.entities import Metric

            store = MlflowClient()._tracking_client.store
            for step in range(steps):
                now = int(time.time() * 1000)
                metrics = [Metric(k, v, now, step) for k, v in _values(step).items()]
                t = clock()
                store.log_batch(run_id, metrics, [], [])
                per_step.append(clock() - t)
        else:
            profiled = range(steps // 2, steps // 2 + PROFILED_STEPS) if profiler else ()
            for step in range(steps):
                values = _values(step)
                if step in profiled:
                    profiler.enable()
                t = clock()
                mlflow.log_metrics(values, step=step)
                per_step.append(clock() - t)
                if step in profiled:
                    profiler.disable()
        mlflow.end_run()
        end = clock()
        client = MlflowClient()
        stored = sum(len(client.get_metric_history(run_id, key)) for key in KEYS)
        if profiler is not None:
            import io
            import pstats

            out = io.StringIO()
            median = _us(statistics.median(per_step))
            print(f"cProfile of {PROFILED_STEPS} synchronous steps on {scheme}:// (times and call "
                  f"counts are for all {PROFILED_STEPS}); median step {median}", file=out)
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(22)
            print(out.getvalue(), file=sys.stderr)
    return {
        "median_s": statistics.median(per_step),
        "p10_s": _quantile(per_step, 0.1),
        "p90_s": _quantile(per_step, 0.9),
        "total_s": end - start,
        "loop_end_s": end - first,
        "stored": stored,
        "expected": steps * len(KEYS),
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run_child(variant: str, steps: int, profile: bool = False) -> dict:
    env = dict(os.environ)
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("TRACKIO_BUCKET_ID", None)
    env["MLFLOW_ENABLE_ASYNC_LOGGING"] = (
        "true" if MLFLOW_VARIANTS.get(variant, ("", False))[1] else "false"
    )
    env["WANDB_SILENT"] = "true"
    with tempfile.TemporaryDirectory(prefix="mytracker-bench-loop-") as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--steps", str(steps),
             "--data-dir", os.path.join(tmp, "data"), *(["--profile"] if profile else [])],
            env=env, capture_output=True, text=True,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    if profile:
        print(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the parent: rounds, medians, ratios ----------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--sqlite-steps", type=int, default=300,
                        help="steps of the sqlite:/// variants (10-30 ms a step)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.steps, args.data_dir, args.profile)))
        return 0
    if args.profile:
        _run_child("trackio-sync", 2000, profile=True)
        return 0
    if args.quick:
        args.rounds, args.steps, args.sqlite_steps = 2, 1000, 100

    variants = ["trackio-sync", "trackio-async", "trackio-store", "sqlite-sync", "sqlite-async",
                "trackio.log"]
    try:
        import importlib.util

        if importlib.util.find_spec("wandb") is not None:
            variants.append("wandb-offline")
    except ValueError:
        pass
    import mlflow
    import trackio

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(__file__)).stdout.strip()
    print("mytracker training-loop benchmark: one step = 3 metrics")
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores; "
          f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"python {platform.python_version()}, mlflow {mlflow.__version__}, trackio "
          f"{trackio.__version__}, git {commit or '?'}")
    print(f"{args.rounds} rounds x {len(variants)} variants, each a child interpreter; "
          f"{args.steps} steps a run (sqlite:/// {args.sqlite_steps}); wandb "
          f"{'importable' if 'wandb-offline' in variants else 'not importable: skipped'}")

    results: dict[str, list[dict]] = {v: [] for v in variants}
    started = time.time()
    rng = random.Random(17)
    for round_number in range(args.rounds):
        order = variants[:]
        rng.shuffle(order)
        for variant in order:
            steps = args.sqlite_steps if variant.startswith("sqlite") else args.steps
            result = _run_child(variant, steps)
            result["steps"] = steps
            results[variant].append(result)
        print(f"  round {round_number + 1}: " + ", ".join(
            f"{v} {_us(results[v][-1]['median_s'])}" for v in order), flush=True)

    def med(variant: str, field: str) -> float:
        return statistics.median(r[field] for r in results[variant])

    def per_step_total(variant: str) -> float:
        """The loop and the end of the run (which writes what was queued), per step."""
        return statistics.median(r["loop_end_s"] / r["steps"] for r in results[variant])

    print()
    print(f"RESULTS (medians of {args.rounds} rounds; step = one call; total = start of run to "
          "end of run; cost/step = (first step to end of run, so the final flush counts) / steps)")
    header = (f"{'variant':<15} {'steps':>6} {'step median':>12} {'p10-p90':>19} "
              f"{'total':>10} {'cost/step':>11} {'read back':>14}")
    print(header)
    print("-" * len(header))
    all_back = True
    for variant in variants:
        rows = results[variant]
        stored = [r["stored"] for r in rows]
        expected = rows[0]["expected"]
        if stored[0] is None:
            back = "not read"
        else:
            complete = all(s == expected for s in stored)
            all_back &= complete
            back = f"{min(stored)}/{expected}" + ("" if complete else " MISSING")
        print(f"{variant:<15} {rows[0]['steps']:>6} {_us(med(variant, 'median_s')):>12} "
              f"{_us(med(variant, 'p10_s')) + ' - ' + _us(med(variant, 'p90_s')):>19} "
              f"{med(variant, 'total_s'):>9.2f}s {_us(per_step_total(variant)):>11} {back:>14}")

    trackio_log = per_step_total("trackio.log")
    store = med("trackio-store", "median_s")
    checks = [
        ("trackio-store step / trackio.log cost per step", store / trackio_log, 3.0),
        ("trackio-sync step / trackio-store step", med("trackio-sync", "median_s") / store, 1.5),
        ("trackio-async cost per step / trackio.log cost per step",
         per_step_total("trackio-async") / trackio_log, 2.0),
    ]
    print()
    print("for comparison: sqlite-sync / trackio-sync step = "
          f"{med('sqlite-sync', 'median_s') / med('trackio-sync', 'median_s'):.1f}x; "
          "trackio-async step (the call alone) / trackio.log step = "
          f"{med('trackio-async', 'median_s') / med('trackio.log', 'median_s'):.2f}x")
    failed = 0
    for name, ratio, target in checks:
        ok = ratio <= target
        failed += not ok
        print(f"  {name:<58} {ratio:5.2f}x  target <= {target}x  {'PASS' if ok else 'FAIL'}")
    print(f"  {'every point read back':<58} {'yes' if all_back else 'NO':>6}          "
          f"{'PASS' if all_back else 'FAIL'}")
    failed += not all_back
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"total {time.time() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
