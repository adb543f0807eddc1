#!/usr/bin/env python
"""Benchmark the ``trackio://`` store against MLflow's own SQLite store, in one run.

    python benchmarks/bench_store.py           # full run, about 3-5 minutes on 2 cores
    python benchmarks/bench_store.py --quick   # smaller sizes, fewer repetitions, under 1 minute

Both stores are reached the way users reach them, through ``MlflowClient(tracking_uri=...)``:
``sqlite:///<tmp>/mlflow.db`` (MLflow's default backend, as MLflow configures it) and
``trackio:///<tmp>/trackio`` (through mytracker's entry point). Every measurement has a warm-up,
several repetitions, and reports the median; the stores' repetitions are interleaved so that
load from other processes falls on both alike. Only the ratios measured in the same run count:
see docs/performance.md for what each row means and for a committed run.

All data is generated. Targets (issue 2, "Speed"):
  1. log_metric (synchronous, per call): trackio >= 10x faster than sqlite
  2. log_batch of 1,000 points: >= 10x faster than sqlite and <= 3x the floor (a bare
     executemany of the same rows into a plain SQLite table, WAL, synchronous=NORMAL)
  3. get_metric_history of 100,000 points: no slower than sqlite
  4. search_runs, one metric and one param filter over 5,000 runs: no slower than sqlite
  5. `python -c "import mlflow"`: < 50 ms slower with mytracker installed than without
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import platform
import pstats
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path

# The stores must see a clean environment before mlflow is imported.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("TRACKIO_BUCKET_ID", None)
os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"  # log_metric must be synchronous
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

T0_MS = 1_700_000_000_000  # generated timestamps start here
SECTIONS = ("log_metric", "log_batch", "history", "search", "import")


class Config:
    def __init__(self, quick: bool):
        self.quick = quick
        self.log_metric_calls = 50 if quick else 400  # per repetition
        self.log_metric_reps = 3 if quick else 5
        self.batch_reps = 3 if quick else 15
        self.history_points = 20_000 if quick else 100_000
        self.history_reps = 3 if quick else 5
        self.search_runs = 500 if quick else 5_000
        self.search_reps = 3 if quick else 5
        self.import_reps = 5 if quick else 21


# --- timing helpers ------------------------------------------------------------------------------


def interleaved(fns: dict, reps: int, warmup: int = 1, profile: dict | None = None) -> dict:
    """Median wall time of each callable, repetitions taken round-robin across them. Each round
    runs them in a new (seeded) random order, so no callable always follows the same one: one
    that always ran right after MLflow's 70 ms SQLAlchemy call would always start with cold CPU
    caches, one that always followed a cheap call, warm."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    order = list(fns.items())
    shuffle = random.Random(len(fns) * 1000 + reps).shuffle
    for _ in range(reps):
        shuffle(order)
        for name, fn in order:
            profiler = profile.get(name) if profile else None
            if profiler:
                profiler.enable()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            if profiler:
                profiler.disable()
    return {name: statistics.median(ts) for name, ts in times.items()}


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


class Results:
    def __init__(self):
        self.rows: list[tuple] = []  # (benchmark, sqlite, trackio, floor, ratio text, target, ok)

    def add(self, name, sqlite_s, trackio_s, floor_s, ratio_text, target, ok):
        self.rows.append((name, sqlite_s, trackio_s, floor_s, ratio_text, target, ok))
        print(f"  -> {name}: sqlite {fmt_time(sqlite_s)}, trackio {fmt_time(trackio_s)}"
              f"{', floor ' + fmt_time(floor_s) if floor_s else ''}; {ratio_text}: "
              f"{'PASS' if ok else 'FAIL'}", flush=True)

    def table(self) -> str:
        header = ("benchmark", "sqlite|without", "trackio|with", "floor", "ratio", "target", "result")
        body = [
            (name, fmt_time(s), fmt_time(t), fmt_time(f), ratio, target, "PASS" if ok else "FAIL")
            for name, s, t, f, ratio, target, ok in self.rows
        ]
        widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
        line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


# --- the stores -----------------------------------------------------------------------------------


def make_clients(tmp: Path):
    import mlflow  # noqa: F401  (loads the entry points, as a user's import does)
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    start = time.perf_counter()
    sqlite_client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    sqlite_client.search_experiments()  # creates the database (MLflow's migrations)
    sqlite_setup = time.perf_counter() - start
    start = time.perf_counter()
    trackio_client = MlflowClient(tracking_uri=f"trackio://{tmp}/trackio")
    trackio_client.search_experiments()
    trackio_setup = time.perf_counter() - start
    print(f"store set-up: sqlite {fmt_time(sqlite_setup)} (MLflow's schema migrations), "
          f"trackio {fmt_time(trackio_setup)}", flush=True)
    return {"sqlite": sqlite_client, "trackio": trackio_client}


def new_experiment(client, tmp: Path, store: str, name: str) -> str:
    location = (tmp / "artifacts" / store / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def sqlite_path(tmp: Path) -> Path:
    return tmp / "mlflow.db"


# --- 1. log_metric --------------------------------------------------------------------------------


def bench_log_metric(cfg, clients, tmp, results, profile):
    calls = cfg.log_metric_calls
    print(f"\n[1] MlflowClient.log_metric, synchronous: {cfg.log_metric_reps} x {calls} calls "
          f"per store (+{calls} warm-up)", flush=True)
    fns = {}
    for store, client in clients.items():
        run_id = client.create_run(new_experiment(client, tmp, store, "log-metric")).info.run_id
        counter = iter(range(10**9))

        def run(client=client, run_id=run_id, counter=counter):
            for _ in range(calls):
                step = next(counter)
                client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)

        fns[store] = run
    med = interleaved(fns, cfg.log_metric_reps, profile=profile)
    s, t = med["sqlite"] / calls, med["trackio"] / calls
    results.add("log_metric (per call)", s, t, None, f"sqlite/trackio = {s / t:.1f}x",
                ">= 10x", s / t >= 10)


# --- 2. log_batch and the floor ------------------------------------------------------------------


def bench_log_batch(cfg, clients, tmp, results, profile):
    from mlflow.entities import Metric

    print(f"\n[2] log_batch of 1,000 metric points: {cfg.batch_reps} repetitions per store, shape "
          "and level (+1 warm-up). Level 'store': the store object's log_batch (what the store "
          "costs); level 'client': MlflowClient.log_batch, which adds MLflow's own per-metric "
          "work (it rebuilds every Metric and asks for the active model id) before any store is "
          "called. floor = BEGIN; executemany of the same (run_id, key, value, timestamp, step) "
          "rows into a plain table; COMMIT (WAL, synchronous=NORMAL)", flush=True)
    floor = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    floor.execute("PRAGMA journal_mode = WAL")
    floor.execute("PRAGMA synchronous = NORMAL")
    floor.execute(
        "CREATE TABLE points (run_id TEXT, key TEXT, value REAL, timestamp INTEGER, step INTEGER)"
    )
    trackio_floor = trackio_metrics_table(tmp / "floor-trackio-schema.db")
    rng = random.Random(2)
    for steps, keys in ((100, 10), (1000, 1)):
        shape = f"{steps} steps x {keys} key{'s' if keys > 1 else ''}"
        # Successive calls log successive steps of one run, as a training loop does.
        batches = [
            [
                Metric(f"metric_{k}", rng.random(), T0_MS + (call * steps + s) * 10, call * steps + s)
                for s in range(steps)
                for k in range(keys)
            ]
            for call in range(1 + cfg.batch_reps)
        ]
        fns = {}
        for store, client in clients.items():
            for level in ("store", "client"):
                experiment_id = new_experiment(client, tmp, store, f"log-batch-{steps}x{keys}-{level}")
                run_id = client.create_run(experiment_id).info.run_id
                pending = iter(batches)
                if level == "store":
                    target = client._tracking_client.store
                    fns[store, level] = lambda t=target, r=run_id, p=pending: t.log_batch(
                        r, metrics=next(p), params=[], tags=[]
                    )
                else:
                    fns[store, level] = lambda c=client, r=run_id, p=pending: c.log_batch(
                        r, metrics=next(p)
                    )
        floor_run = "f" * 32
        floor_batches = [
            [(floor_run, m.key, m.value, m.timestamp, m.step) for m in batch] for batch in batches
        ]
        floor_rows = iter(floor_batches)

        def bare_executemany(rows=floor_rows):
            batch = next(rows)
            floor.execute("BEGIN")
            floor.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", batch)
            floor.execute("COMMIT")

        fns["floor"] = bare_executemany
        # Diagnostic only: the same points as Trackio rows (one per step) into a table with
        # Trackio's own schema and indexes, what any writer of Trackio's format pays.
        trackio_rows = iter([trackio_row_texts(floor_run, batch) for batch in batches])

        def trackio_schema_executemany(rows=trackio_rows):
            batch = next(rows)
            trackio_floor.execute("BEGIN")
            trackio_floor.executemany(
                "INSERT INTO metrics (run_id, timestamp, run_name, step, metrics) "
                "VALUES (?, ?, ?, ?, ?)",
                batch,
            )
            trackio_floor.execute("COMMIT")

        fns["trackio-schema floor"] = trackio_schema_executemany
        med = interleaved(
            fns, cfg.batch_reps, profile={("trackio", "store"): profile["trackio"]} if profile else None
        )
        f = med["floor"]
        for level in ("store", "client"):
            s, t = med["sqlite", level], med["trackio", level]
            results.add(
                f"log_batch 1,000 pts, {level} ({shape})", s, t, None,
                f"sqlite/trackio = {s / t:.1f}x", ">= 10x", s / t >= 10,
            )
            if level == "store":
                results.add(
                    f"  store vs floor ({shape})", None, t, f,
                    f"trackio/floor = {t / f:.1f}x", "<= 3x", t / f <= 3,
                )
        print(f"  diagnostic: the same points as {len(floor_batches[0]) // keys} Trackio rows into "
              f"Trackio's indexed metrics table: {fmt_time(med['trackio-schema floor'])} "
              f"({med['trackio-schema floor'] / f:.1f}x the floor)", flush=True)
    floor.close()
    trackio_floor.close()


def trackio_metrics_table(path: Path) -> sqlite3.Connection:
    """A database with Trackio 0.43's metrics table and its indexes (as `trackio` creates them)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(
        """
        CREATE TABLE metrics (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, timestamp TEXT NOT NULL,
            run_name TEXT NOT NULL, step INTEGER NOT NULL, metrics TEXT NOT NULL, log_id TEXT,
            space_id TEXT
        );
        CREATE INDEX idx_metrics_run_step ON metrics(run_id, step);
        CREATE INDEX idx_metrics_run_timestamp ON metrics(run_id, timestamp);
        CREATE UNIQUE INDEX idx_metrics_log_id ON metrics(log_id) WHERE log_id IS NOT NULL;
        CREATE INDEX idx_metrics_pending ON metrics(space_id) WHERE space_id IS NOT NULL;
        CREATE INDEX idx_metrics_run_record ON metrics(run_id, run_name, timestamp);
        """
    )
    return conn


def trackio_row_texts(run_id: str, batch: list) -> list[tuple]:
    import json
    from datetime import datetime, timezone

    by_step: dict[tuple, dict] = {}
    for m in batch:
        by_step.setdefault((m.step, m.timestamp), {})[m.key] = m.value
    return [
        (
            run_id,
            datetime.fromtimestamp(ts / 1000, timezone.utc).isoformat(timespec="microseconds"),
            "bench-run",
            step,
            json.dumps(values),
        )
        for (step, ts), values in by_step.items()
    ]


# --- 3. get_metric_history ----------------------------------------------------------------------


def bench_history(cfg, clients, tmp, results, profile):
    from mlflow.entities import Metric

    n = cfg.history_points
    print(f"\n[3] MlflowClient.get_metric_history of {n:,} points of one key: "
          f"{cfg.history_reps} repetitions per store (+1 warm-up)", flush=True)
    rng = random.Random(3)
    points = [(step, T0_MS + step * 10, rng.gauss(0, 1)) for step in range(n)]
    run_ids = {}
    for store, client in clients.items():
        run_ids[store] = client.create_run(new_experiment(client, tmp, store, "history")).info.run_id
    # trackio: through the store, in batches of 1,000 (the largest MLflow allows).
    start = time.perf_counter()
    for i in range(0, n, 1000):
        clients["trackio"].log_batch(
            run_ids["trackio"], metrics=[Metric("loss", v, ts, s) for s, ts, v in points[i : i + 1000]]
        )
    trackio_fill = time.perf_counter() - start
    # sqlite: the same rows written straight into MLflow's own tables (through its log_batch
    # this would take minutes); the answers are compared below.
    start = time.perf_counter()
    fill_mlflow_metrics(tmp, [(run_ids["sqlite"], "loss", v, ts, s) for s, ts, v in points])
    sqlite_fill = time.perf_counter() - start
    print(f"  data: trackio via log_batch in {fmt_time(trackio_fill)}, sqlite via direct INSERT "
          f"into MLflow's tables in {fmt_time(sqlite_fill)}", flush=True)

    answers = {}

    def fetch(store):
        def run():
            answers[store] = clients[store].get_metric_history(run_ids[store], "loss")
        return run

    med = interleaved({store: fetch(store) for store in clients}, cfg.history_reps, profile=profile)
    same = [(m.step, m.timestamp, m.value) for m in answers["sqlite"]] == [
        (m.step, m.timestamp, m.value) for m in answers["trackio"]
    ]
    if not same or len(answers["trackio"]) != n:
        print(f"  WARNING: the stores' answers differ ({len(answers['sqlite'])} vs "
              f"{len(answers['trackio'])} points)", flush=True)
    else:
        print(f"  both stores returned the same {n:,} points", flush=True)
    s, t = med["sqlite"], med["trackio"]
    results.add(f"get_metric_history ({n:,} pts)", s, t, None, f"sqlite/trackio = {s / t:.2f}x",
                ">= 1x", s / t >= 1 and same)


def fill_mlflow_metrics(tmp: Path, rows: list[tuple]) -> None:
    """Write (run_id, key, value, timestamp, step) rows the way MLflow's SQL store stores them:
    every point in ``metrics``, the latest per key in ``latest_metrics``."""
    latest = {}
    for run_id, key, value, timestamp, step in rows:
        rank = (step, timestamp, value)
        if (run_id, key) not in latest or rank > latest[run_id, key][0]:
            latest[run_id, key] = (rank, (key, value, timestamp, step, 0, run_id))
    conn = sqlite3.connect(sqlite_path(tmp), isolation_level=None, timeout=60)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
        [(key, value, timestamp, run_id, step) for run_id, key, value, timestamp, step in rows],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [row for _, row in latest.values()],
    )
    conn.execute("COMMIT")
    conn.close()


# --- 4. search_runs -------------------------------------------------------------------------------


SEARCH_FILTER = "metrics.loss < 0.5 and params.lr = '0.01'"


def bench_search(cfg, clients, tmp, results, profile):
    from mlflow.entities import Metric, Param

    n = cfg.search_runs
    print(f"\n[4] MlflowClient.search_runs(filter=\"{SEARCH_FILTER}\") over {n:,} runs "
          f"(3 params, 2 metrics, 2 tags each): {cfg.search_reps} repetitions per store "
          "(+1 warm-up)", flush=True)
    rng = random.Random(4)
    runs = [
        {
            "name": f"run-{i:05d}",
            "start_time": T0_MS + i * 60_000,
            "params": {
                "lr": rng.choice(["0.1", "0.01", "0.001", "0.0001"]),
                "batch_size": str(rng.choice([16, 32, 64, 128])),
                "optimizer": rng.choice(["adam", "sgd", "adamw"]),
            },
            "metrics": {"loss": rng.random(), "accuracy": rng.random()},
        }
        for i in range(n)
    ]
    experiments = {store: new_experiment(c, tmp, store, "search") for store, c in clients.items()}
    # trackio: through MlflowClient, as a user creates runs.
    trackio = clients["trackio"]
    start = time.perf_counter()
    for run in runs:
        run["run_id"] = trackio.create_run(
            experiments["trackio"], start_time=run["start_time"], tags={"mlflow.user": "bench"},
            run_name=run["name"],
        ).info.run_id
        trackio.log_batch(
            run["run_id"],
            metrics=[Metric(k, v, run["start_time"] + 1000, 0) for k, v in run["metrics"].items()],
            params=[Param(k, v) for k, v in run["params"].items()],
        )
    trackio_fill = time.perf_counter() - start
    # sqlite: the same runs (same ids) written straight into MLflow's tables.
    start = time.perf_counter()
    fill_mlflow_runs(tmp, experiments["sqlite"], runs)
    sqlite_fill = time.perf_counter() - start
    print(f"  data: trackio via create_run + log_batch in {fmt_time(trackio_fill)} "
          f"({fmt_time(trackio_fill / n)} per run), sqlite via direct INSERT into MLflow's "
          f"tables in {fmt_time(sqlite_fill)}", flush=True)

    answers = {}

    def search(store):
        def run():
            answers[store] = clients[store].search_runs(
                [experiments[store]], SEARCH_FILTER, max_results=n
            )
        return run

    med = interleaved({store: search(store) for store in clients}, cfg.search_reps, profile=profile)
    same = [r.info.run_id for r in answers["sqlite"]] == [r.info.run_id for r in answers["trackio"]]
    expected = sum(r["metrics"]["loss"] < 0.5 and r["params"]["lr"] == "0.01" for r in runs)
    if not same or len(answers["trackio"]) != expected:
        print(f"  WARNING: the stores' answers differ ({len(answers['sqlite'])} vs "
              f"{len(answers['trackio'])} runs, expected {expected})", flush=True)
    else:
        print(f"  both stores returned the same {expected} runs in the same order", flush=True)
    s, t = med["sqlite"], med["trackio"]
    results.add(f"search_runs ({n:,} runs, {expected} hits)", s, t, None,
                f"sqlite/trackio = {s / t:.2f}x", ">= 1x", s / t >= 1 and same)


def fill_mlflow_runs(tmp: Path, experiment_id: str, runs: list[dict]) -> None:
    """The rows MLflow's SQL store writes for create_run + log_batch, for many runs at once."""
    artifacts = (tmp / "artifacts" / "sqlite" / "search").as_uri()
    conn = sqlite3.connect(sqlite_path(tmp), isolation_level=None, timeout=60)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
        "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
        "experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', 'bench', 'RUNNING', ?, "
        "NULL, '', 'active', ?, ?, NULL)",
        [
            (r["run_id"], r["name"], r["start_time"], f"{artifacts}/{r['run_id']}/artifacts",
             int(experiment_id))
            for r in runs
        ],
    )
    conn.executemany(
        "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
        [
            (key, value, r["run_id"])
            for r in runs
            for key, value in (("mlflow.runName", r["name"]), ("mlflow.user", "bench"))
        ],
    )
    conn.executemany(
        "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
        [(k, v, r["run_id"]) for r in runs for k, v in r["params"].items()],
    )
    conn.execute("COMMIT")
    conn.close()
    fill_mlflow_metrics(
        tmp,
        [(r["run_id"], k, v, r["start_time"] + 1000, 0) for r in runs for k, v in r["metrics"].items()],
    )


# --- 5. import mlflow -------------------------------------------------------------------------


IMPORT_CODE = "import sys, site; site.addsitedir(sys.argv[1]); import mlflow"
CHECK_CODE = (
    "import sys, site; site.addsitedir(sys.argv[1]); import mlflow; "
    "from mlflow.tracking._tracking_service.utils import _tracking_store_registry as r; "
    "print('trackio' in r._registry, any(m.startswith('mytracker') for m in sys.modules))"
)


def make_site_dirs(tmp: Path) -> dict[str, Path]:
    """Site directories that differ from this venv's only in how mytracker is installed.

    "without": every entry of site-packages, symlinked, except mytracker's dist-info and its
    editable-install hook (.pth + finder), so no `mlflow.tracking_store` entry point exists.
    "wheel": "without" plus the dist-info and the package directory itself, the layout a
    regular (non-editable) wheel install has.
    """
    import mytracker

    site_packages = Path(sysconfig.get_paths()["purelib"])
    package_dir = Path(mytracker.__file__).parent
    ours = [p for p in site_packages.iterdir() if "mytracker" in p.name.lower()]
    dist_info = next(p for p in ours if p.name.endswith(".dist-info"))
    dirs = {"without": tmp / "site-without", "wheel": tmp / "site-wheel"}
    for directory in dirs.values():
        directory.mkdir()
        for entry in site_packages.iterdir():
            if entry not in ours:
                (directory / entry.name).symlink_to(entry)
    (dirs["wheel"] / dist_info.name).symlink_to(dist_info)
    (dirs["wheel"] / "mytracker").symlink_to(package_dir)
    return {"installed (editable, this venv)": site_packages, **dirs}


def run_child(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall time, CPU time (user + system) and stdout of one child interpreter.

    cwd must be a neutral directory: `-c` puts the working directory on sys.path, and a source
    checkout's `mytracker.egg-info` there would register the entry point in every variant."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=cwd).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.strip()


def importtime_of_mytracker(cwd: Path) -> tuple[float, list[str]]:
    """Self time (us) of every mytracker module and hook in `python -X importtime -c 'import mlflow'`."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mlflow"],
        capture_output=True, text=True, check=True, cwd=cwd,
    ).stderr
    total, lines = 0, []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line.split(":", 1)[1].split("|")
        if "mytracker" in name:
            total += int(self_us)
            lines.append(f"{name.strip()} self {int(self_us)} us, cumulative {int(cumulative)} us")
    return total, lines


def bench_import(cfg, tmp, results):
    reps = cfg.import_reps
    sites = make_site_dirs(tmp)
    if cfg.quick:
        sites.pop("wheel")
    print(f"\n[5] `python -c \"import mlflow\"` in a child interpreter: {reps} rounds (+1 warm-up), "
          f"each round one child per variant ({', '.join(sites)}), back to back", flush=True)
    print("  every variant runs `python -S -c 'site.addsitedir(<dir>); import mlflow'`, so they "
          "differ only in the site directory: this venv's own site-packages, a copy (symlinks) "
          "without mytracker's dist-info and editable hook, and that copy plus a regular "
          "wheel's layout (dist-info + package directory)", flush=True)
    cwd = tmp / "neutral-cwd"
    cwd.mkdir()
    variants = {
        name: [sys.executable, "-S", "-c", IMPORT_CODE, str(site)] for name, site in sites.items()
    }
    for name, site in sites.items():  # warm-up, and proof of what each variant sees
        _, _, seen = run_child([sys.executable, "-S", "-c", CHECK_CODE, str(site)], cwd)
        registered, imported = seen.split()
        print(f"  {name}: trackio:// registered={registered}, mytracker imported={imported}",
              flush=True)
    walls = {name: [] for name in variants}
    cpus = {name: [] for name in variants}
    for round_ in range(reps):
        # Alternate the order within a round, so neither variant always runs first.
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            wall, cpu, _ = run_child(variants[name], cwd)
            walls[name].append(wall)
            cpus[name].append(cpu)
    for name in variants:
        print(f"  {name}: wall median {fmt_time(statistics.median(walls[name]))} "
              f"(min {fmt_time(min(walls[name]))}), cpu median "
              f"{fmt_time(statistics.median(cpus[name]))}", flush=True)
    self_us, lines = importtime_of_mytracker(cwd)
    print(f"  -X importtime of `import mlflow` in this venv, self time of mytracker's modules and "
          f"its editable hook: {self_us / 1000:.2f} ms", flush=True)
    for line in lines:
        print(f"    {line}", flush=True)
    for name in variants:
        if name == "without":
            continue
        # Medians of the per-round differences: drift in machine load cancels within a round.
        delta = statistics.median(w - b for w, b in zip(walls[name], walls["without"]))
        delta_cpu = statistics.median(c - b for c, b in zip(cpus[name], cpus["without"]))
        label = "import mlflow, " + ("wheel layout" if name == "wheel" else "editable install")
        # The verdict uses CPU time: `import mlflow` is single-threaded and reads cached files, so
        # on an idle machine its wall time is its CPU time; on a shared machine the wall time also
        # holds the time spent waiting for a core, which other processes decide.
        results.add(
            label, statistics.median(cpus["without"]), statistics.median(cpus[name]), None,
            f"{delta_cpu * 1e3:+.0f} ms cpu ({delta * 1e3:+.0f} ms wall)", "< +50 ms",
            delta_cpu < 0.050,
        )


# --- main ---------------------------------------------------------------------------------------


def describe_machine() -> list[str]:
    import importlib.metadata as md

    cpu = platform.processor() or "unknown CPU"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True,
        ).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "mytracker"], cwd=Path(__file__).parent,
        capture_output=True, text=True,
    ).stdout.strip()
    if dirty:
        commit += " + uncommitted changes in " + ", ".join(
            line.split()[-1] for line in dirty.splitlines()
        )
    return [
        f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}",
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"python {platform.python_version()}, mlflow {md.version('mlflow')}, "
        f"trackio {md.version('trackio')}, mytracker {md.version('mytracker')} (git {commit}), "
        f"SQLite {sqlite3.sqlite_version}",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the timed trackio calls and print the top functions")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args(argv)
    cfg = Config(args.quick)
    started = time.perf_counter()

    print(f"mytracker store benchmark ({'QUICK: reduced sizes and repetitions' if cfg.quick else 'full'})")
    print(f"command: python benchmarks/bench_store.py {' '.join(sys.argv[1:])}".rstrip())
    for line in describe_machine():
        print(line)
    tmp = Path(tempfile.mkdtemp(prefix="mytracker-bench-"))
    print(f"data: {tmp} (generated, deleted afterwards{' unless --keep' if not args.keep else ''})")
    results = Results()
    profiler = cProfile.Profile() if args.profile else None
    profile = {"trackio": profiler} if profiler else None
    try:
        store_sections = [s for s in args.only if s != "import"]
        if store_sections:
            clients = make_clients(tmp)
            for section in store_sections:
                {
                    "log_metric": bench_log_metric,
                    "log_batch": bench_log_batch,
                    "history": bench_history,
                    "search": bench_search,
                }[section](cfg, clients, tmp, results, profile)
        if "import" in args.only:
            bench_import(cfg, tmp, results)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nRESULTS ({'quick' if cfg.quick else 'full'} run, medians; ratios from the same run; "
          f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"total {time.perf_counter() - started:.0f} s)")
    print("columns: 'sqlite|without' is MLflow's sqlite:/// store, or for the import rows the "
          "interpreter without mytracker (CPU time);\n         'trackio|with' is the trackio:// "
          "store, or the interpreter with mytracker installed (CPU time)")
    print(results.table())
    failed = [row[0].strip() for row in results.rows if not row[6]]
    print(f"\n{len(results.rows) - len(failed)} of {len(results.rows)} targets met"
          + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    if profiler:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(30)
        print("\nPROFILE of the timed trackio calls (cumulative). Under --profile the trackio "
              "timings above include the profiler's overhead: use them for where, not how much."
              "\n" + stream.getvalue())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
