#!/usr/bin/env python
"""At a team's scale: what a call costs on a big run and in a big directory, ``trackio://``
against MLflow's own SQLite store, measured in one run.

    python benchmarks/bench_scale.py                         # every section, full sizes
    python benchmarks/bench_scale.py --points 1000000 --experiments 200   # smaller
    python benchmarks/bench_scale.py --only points rename   # some sections

Sections (targets from issue 12):

points      one run of ``--points`` points of one key in each store (the SQLite store's run is
            written straight into MLflow's tables: through its log_batch it would take hours);
            then, in random order each round, one ``log_batch`` of 1,000 new points on that run
            and on a fresh empty run, with timestamps (a) increasing, (b) all one repeated
            timestamp, (c) older than everything stored. Targets: each at least 10x faster than
            the SQLite store on its big run, and within 1.5x of the same batch on an empty run.
            Also the first page of get_metric_history, big run against a 1,000-point run.
rename      renaming the big run (what the MLflow UI does) while another process logs to a
            second run of the same experiment: the rename's time and the other writer's worst
            call. Target: worst call under 1 s.
experiments ``--experiments`` experiments x 10 runs in each store: the next create_experiment
            (and the first, in an empty directory), get_experiment_by_name, search_experiments
            (all, and one filter), and get_run in a fresh process. Targets: each at least as
            fast as the SQLite store; the last create within 2x of the first.
listing     in a fresh process, listing every experiment 100 times: open file descriptors and
            peak memory, against the SQLite store.
ui          the MLflow UI's calls for its experiment list and for one experiment's run list, over
            HTTP: `mytracker server` on the directory of `experiments` against `mlflow server`
            on the SQLite store of the same data (one worker each).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
warnings.filterwarnings("ignore")

T0 = 1_700_000_000_000
BATCH = 1000
SECTIONS = ("points", "rename", "experiments", "listing", "ui")
failures: list[str] = []


def check(ok: bool, label: str) -> str:
    if not ok:
        failures.append(label)
    return "PASS" if ok else "FAIL"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def spread(values: list[float]) -> str:
    return f"{median_ms(values):.1f} ({min(values) * 1000:.1f}-{max(values) * 1000:.1f})"


# --- points ---------------------------------------------------------------------------------------


def fill_sqlite_run(db_path: str, run_id: str, n: int) -> None:
    """One key's points straight into MLflow's own tables, as its SQL store keeps them."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=60)
    for first in range(0, n, 100_000):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES ('loss', ?, ?, ?, ?, 0)",
            ((1.0 / (i + 1), T0 + 1000 + i, run_id, i) for i in range(first, min(first + 100_000, n))),
        )
        conn.execute("COMMIT")
    conn.execute(
        "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
        "VALUES ('loss', ?, ?, ?, 0, ?)",
        (1.0 / n, T0 + 1000 + n - 1, n - 1, run_id),
    )
    conn.close()


def bench_points(args, tmp, clients) -> dict:
    from mlflow.entities import Metric

    print(f"\n[points] a run of {args.points:,} points of one key in each store", flush=True)
    big, experiment = {}, {}
    for name, client in clients.items():
        experiment[name] = client.create_experiment("scale")
        big[name] = client.create_run(experiment[name]).info.run_id
    started = time.perf_counter()
    for first in range(0, args.points, BATCH):
        clients["trackio"].log_batch(big["trackio"], metrics=[
            Metric("loss", 1.0 / (i + 1), T0 + 1000 + i, i)
            for i in range(first, min(first + BATCH, args.points))
        ])
    print(f"  trackio: log_batch x {args.points // BATCH:,} in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    fill_sqlite_run(f"{tmp}/mlflow.db", big["sqlite"], args.points)
    print(f"  sqlite: direct INSERT into MLflow's tables in {time.perf_counter() - started:.1f} s")

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

    names = {"a": "(a) increasing", "b": "(b) repeated", "c": "(c) older"}
    print(f"  log_batch of {BATCH:,} points, median ms (min-max), {args.rounds} rounds")
    print(f"  {'pattern':<16}{'trackio big':>22}{'trackio empty':>22}{'sqlite big':>22}"
          f"{'sqlite/trackio':>16}{'big/empty':>11}")
    for pattern in "abc":
        t_big, t_empty, s_big = (timings[(pattern, s, w)] for s, w in
                                 (("trackio", "big"), ("trackio", "empty"), ("sqlite", "big")))
        faster = median_ms(s_big) / median_ms(t_big)
        growth = median_ms(t_big) / median_ms(t_empty)
        verdict = check(faster >= 10 and growth <= 1.5, f"log_batch {names[pattern]}")
        print(f"  {names[pattern]:<16}{spread(t_big):>22}{spread(t_empty):>22}{spread(s_big):>22}"
              f"{faster:>15.1f}x{growth:>10.2f}x  {verdict}")

    small = clients["trackio"].create_run(experiment["trackio"]).info.run_id
    clients["trackio"].log_batch(small, metrics=[Metric("loss", 1.0, T0 + i, i) for i in range(BATCH)])
    from mlflow.tracking._tracking_service.utils import _get_store

    store = _get_store(clients["trackio"].tracking_uri)
    page: dict[str, list[float]] = {"big": [], "small": []}
    runs = [("big", big["trackio"]), ("small", small)]
    for round_no in range(args.rounds + 1):  # interleaved, in random order; the first warms up
        rng.shuffle(runs)
        for label, run_id in runs:
            started = time.perf_counter()
            store.get_metric_history(run_id, "loss", max_results=BATCH)
            if round_no:
                page[label].append(time.perf_counter() - started)
    ratio = median_ms(page["big"]) / median_ms(page["small"])
    print(f"  get_metric_history, first page of {BATCH:,}: big run {spread(page['big'])} ms, "
          f"1,000-point run {spread(page['small'])} ms: {ratio:.2f}x "
          f"{check(ratio <= 1.5, 'history first page')}")
    return {"run_id": big["trackio"], "experiment_id": experiment["trackio"]}


# --- rename ---------------------------------------------------------------------------------------

WRITER = """
import json, os, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric
client = MlflowClient(tracking_uri=sys.argv[1])
run_id = client.create_run(sys.argv[2]).info.run_id
print("READY", flush=True)
latencies, step = [], 0
while not os.path.exists(sys.argv[3]):  # until the rename has returned
    metrics = [Metric("acc", 0.5, int(time.time() * 1000), step + i) for i in range(10)]
    started = time.perf_counter()
    client.log_batch(run_id, metrics=metrics)
    latencies.append(time.perf_counter() - started)
    step += 10
    time.sleep(0.01)
print(json.dumps(latencies))
"""


def bench_rename(args, tmp, clients, big) -> None:
    import json

    print(f"\n[rename] renaming the {args.points:,}-point run while another process logs to a "
          "second run of the same experiment (10 points every 10 ms)", flush=True)
    uri = clients["trackio"].tracking_uri
    done = os.path.join(tmp, "rename-done")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, uri, big["experiment_id"], done],
        stdout=subprocess.PIPE, text=True,
    )
    assert writer.stdout.readline().strip() == "READY"
    time.sleep(1.0)
    started = time.perf_counter()
    clients["trackio"].set_tag(big["run_id"], "mlflow.runName", "renamed-run")
    rename_s = time.perf_counter() - started
    open(done, "w").close()  # the writer logs for the whole rename, then stops
    latencies = json.loads(writer.communicate(timeout=120)[0].strip().splitlines()[-1])
    worst = max(latencies)
    p99 = sorted(latencies)[int(len(latencies) * 0.99)]
    print(f"  rename (set_tag mlflow.runName) returned in {rename_s:.2f} s; the other writer's "
          f"{len(latencies)} calls: median {median_ms(latencies):.1f} ms, p99 {p99 * 1000:.0f} ms, "
          f"worst {worst * 1000:.0f} ms {check(worst < 1.0, 'writer latency during rename')}")


# --- experiments --------------------------------------------------------------------------------

FRESH_GET_RUN = """
import sys, time
from mlflow import MlflowClient
started = time.perf_counter()
MlflowClient(tracking_uri=sys.argv[1]).get_run(sys.argv[2])
print(time.perf_counter() - started)
"""


def bench_experiments(args, tmp) -> None:
    from mlflow import MlflowClient

    n = args.experiments
    print(f"\n[experiments] {n:,} experiments x 10 runs in each store", flush=True)
    clients = {
        "trackio": MlflowClient(tracking_uri=f"trackio://{tmp}/many"),
        "sqlite": MlflowClient(tracking_uri=f"sqlite:///{tmp}/many.db"),
    }
    first_create, run_ids = {}, {}
    for name, client in clients.items():
        started = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            experiment_id = client.create_experiment(f"exp-{i:05d}")
            if i == 0:
                first_create[name] = time.perf_counter() - t
            for j in range(10):
                run_ids.setdefault(name, []).append(
                    client.create_run(experiment_id, run_name=f"run-{j}").info.run_id
                )
        print(f"  {name}: made in {time.perf_counter() - started:.1f} s", flush=True)
    time.sleep(0.2)

    timings: dict[tuple, list[float]] = {}
    rng = random.Random(1)
    calls = {
        "create_experiment": lambda c, r: c.create_experiment(f"more-{r}"),
        "get_experiment_by_name": lambda c, r: c.get_experiment_by_name(f"exp-{r % n:05d}"),
        "search_experiments (all)": lambda c, r: c.search_experiments(max_results=n + 100),
        "search_experiments (filter)": lambda c, r: c.search_experiments(
            filter_string="name LIKE 'exp-0001%'"),
    }
    cases = [(call, store) for call in calls for store in clients]
    for round_no in range(args.rounds + 1):
        rng.shuffle(cases)
        for call, store in cases:
            started = time.perf_counter()
            calls[call](clients[store], round_no)
            if round_no:
                timings.setdefault((call, store), []).append(time.perf_counter() - started)
    for round_no in range(5):
        for store, client in clients.items():
            out = subprocess.run(
                [sys.executable, "-c", FRESH_GET_RUN, client.tracking_uri,
                 rng.choice(run_ids[store])],
                capture_output=True, text=True, check=True,
            )
            timings.setdefault(("get_run (fresh process)", store), []).append(
                float(out.stdout.strip().splitlines()[-1]))

    print(f"  median ms (min-max), {args.rounds} rounds; get_run: 5 fresh processes each")
    print(f"  {'call':<30}{'trackio':>22}{'sqlite':>22}{'sqlite/trackio':>16}")
    for call in [*calls, "get_run (fresh process)"]:
        t, s = timings[(call, "trackio")], timings[(call, "sqlite")]
        ratio = median_ms(s) / median_ms(t)
        print(f"  {call:<30}{spread(t):>22}{spread(s):>22}{ratio:>15.2f}x  "
              f"{check(ratio >= 1.0, call)}")
    growth = statistics.median(timings[("create_experiment", "trackio")]) / first_create["trackio"]
    print(f"  trackio create_experiment: the first {first_create['trackio'] * 1000:.1f} ms, with "
          f"{n:,} present {median_ms(timings[('create_experiment', 'trackio')]):.1f} ms: "
          f"{growth:.2f}x {check(growth <= 2.0, 'create with many present')}")



# --- listing --------------------------------------------------------------------------------------

LISTER = """
import os, resource, sys
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
for _ in range(100):
    listed = client.search_experiments(max_results=50000)
fds = len(os.listdir("/proc/self/fd"))
print(len(listed), fds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def bench_listing(args, tmp) -> None:
    from mytracker.store._catalog import MAX_OPEN_FILES

    print(f"\n[listing] a fresh process lists every experiment 100 times", flush=True)
    measured = {}
    for store, uri in (("sqlite", f"sqlite:///{tmp}/many.db"), ("trackio", f"trackio://{tmp}/many")):
        out = subprocess.run([sys.executable, "-c", LISTER, uri], capture_output=True, text=True,
                             check=True).stdout.split()
        listed, fds, rss_mb = measured[store] = tuple(map(int, out[-3:]))
        verdict = ""
        if store == "trackio":  # the cap held, and memory flat: no more than the SQLite store's
            verdict = (f"{check(fds <= MAX_OPEN_FILES * 3 + 64, 'open files')} (cap), "
                       f"{check(rss_mb <= measured['sqlite'][2] * 1.1, 'peak RSS')} "
                       "(RSS within 1.1x of the SQLite store's)")
        print(f"  {store}: {listed:,} experiments; open file descriptors {fds}; peak RSS "
              f"{rss_mb} MB {verdict}")


# --- ui -------------------------------------------------------------------------------------------


def _serve(command: list[str], url: str, log_path: str):
    import requests

    log = open(log_path, "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.5)
    os.killpg(process.pid, 9)
    raise RuntimeError(f"{command[:4]} did not start: see {log_path}")


def bench_ui(args, tmp) -> None:
    import signal
    import socket

    import requests

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    print(f"\n[ui] the MLflow UI's calls over HTTP, {args.experiments:,} experiments", flush=True)
    ports = {"trackio": free_port(), "sqlite": free_port()}
    commands = {
        "trackio": [sys.executable, "-m", "mytracker.cli", "server", "--dir", f"{tmp}/many",
                    "--port", str(ports["trackio"]), "--workers", "1"],
        "sqlite": [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                   f"sqlite:///{tmp}/many.db", "--port", str(ports["sqlite"]), "--workers", "1"],
    }
    servers = {}
    try:
        for store, command in commands.items():
            servers[store] = _serve(command, f"http://127.0.0.1:{ports[store]}",
                                    f"{tmp}/server-{store}.log")
        experiment_ids = {}
        for store in servers:
            found = requests.get(
                f"http://127.0.0.1:{ports[store]}/ajax-api/2.0/mlflow/experiments/get-by-name",
                params={"experiment_name": "exp-00001"}).json()
            experiment_ids[store] = found["experiment"]["experiment_id"]
        calls = {
            "experiment list (search, 25)": lambda store: requests.post(
                f"http://127.0.0.1:{ports[store]}/ajax-api/2.0/mlflow/experiments/search",
                json={"max_results": 25, "order_by": ["last_update_time DESC"]}),
            "one experiment's runs": lambda store: requests.post(
                f"http://127.0.0.1:{ports[store]}/ajax-api/2.0/mlflow/runs/search",
                json={"experiment_ids": [experiment_ids[store]], "max_results": 100,
                      "order_by": ["attributes.start_time DESC"]}),
        }
        timings: dict[tuple, list[float]] = {}
        cases = [(call, store) for call in calls for store in servers]
        rng = random.Random(2)
        for round_no in range(args.rounds + 1):
            rng.shuffle(cases)
            for call, store in cases:
                started = time.perf_counter()
                answer = calls[call](store)
                elapsed = time.perf_counter() - started
                assert answer.status_code == 200, answer.text[:300]
                if round_no:
                    timings.setdefault((call, store), []).append(elapsed)
        print(f"  median ms (min-max), {args.rounds} rounds")
        print(f"  {'call':<30}{'mytracker server':>22}{'mlflow server':>22}{'ratio':>10}  "
              "(target: no slower than mlflow server)")
        for call in calls:
            t, s_ = timings[(call, "trackio")], timings[(call, "sqlite")]
            ratio = median_ms(s_) / median_ms(t)
            print(f"  {call:<30}{spread(t):>22}{spread(s_):>22}{ratio:>9.2f}x  "
                  f"{check(ratio >= 1.0, f'ui: {call}')}")
    finally:
        for process in servers.values():
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-scale-")
    try:
        return _run(args, tmp)
    finally:  # a full run's data is about 6 GB
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: str) -> int:
    from mlflow import MlflowClient

    print(f"python {platform.python_version()}, {os.cpu_count()} cores; command: python "
          f"benchmarks/bench_scale.py {' '.join(sys.argv[1:])}".rstrip())
    clients = {
        "trackio": MlflowClient(tracking_uri=f"trackio://{tmp}/trackio"),
        "sqlite": MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db"),
    }
    big = None
    if "points" in args.only or "rename" in args.only:
        big = bench_points(args, tmp, clients)
    if "rename" in args.only:
        bench_rename(args, tmp, clients, big)
    if {"experiments", "listing", "ui"} & set(args.only):
        bench_experiments(args, tmp)
    if "listing" in args.only:
        bench_listing(args, tmp)
    if "ui" in args.only:
        bench_ui(args, tmp)
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    print("all targets met" if not failures else f"targets missed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
