"""MLflow's tracking server on the Trackio store vs. the same server on MLflow's own SQLite store.

    python benchmarks/bench_server.py [--clients 8] [--runs 3] [--steps 1000] [--workers 4]

Both servers are started the same way (MLflow's `mlflow server`, same workers, artifact proxy
on, a SQLite registry next to the data) in the same run, and get the same load: CLIENTS client
processes running tests/load_client.py (RUNS runs each: params, 3 metric histories of STEPS
points sent with log_batch, two artifacts). The clock runs from launching the clients to the
last one finishing; client start-up (importing mlflow) is included for both, equally.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from load_client import METRIC_KEYS  # noqa: E402
from servers import _running, free_port  # noqa: E402

from mytracker.cli._server import server_command  # noqa: E402

LOAD_CLIENT = ROOT / "tests" / "load_client.py"


def mlflow_server(backend_store_uri: str, data_dir: Path, port: int, workers: int) -> list[str]:
    """`mytracker server`'s command line, with the backend store swapped for comparison."""
    command = server_command(data_dir, "127.0.0.1", port, workers)
    command[command.index("--backend-store-uri") + 1] = backend_store_uri
    return command


def load(url: str, clients: int, runs: int, steps: int) -> float:
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, str(LOAD_CLIENT), url, "bench", str(c), str(runs), str(steps)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for c in range(clients)
    ]
    for process in processes:
        _, err = process.communicate(timeout=1200)
        if process.returncode != 0:
            raise SystemExit(f"a client failed:\n{err[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    points = args.clients * args.runs * args.steps * len(METRIC_KEYS)
    print(f"{args.clients} clients x {args.runs} runs x {args.steps} steps x "
          f"{len(METRIC_KEYS)} metrics = {points} points, {args.workers} server workers")

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        for label, uri in (
            ("trackio://", "trackio://{dir}"),
            ("sqlite:///", "sqlite:///{dir}/mlflow.db"),
        ):
            data_dir = Path(tmp) / label.strip(":/")
            data_dir.mkdir()
            port = free_port()
            command = mlflow_server(uri.format(dir=data_dir), data_dir, port, args.workers)
            url = f"http://127.0.0.1:{port}"
            with _running(command, url + "/health", data_dir / "server.log"):
                seconds = load(url, args.clients, args.runs, args.steps)
            results[label] = seconds
            print(f"{label:<11} {seconds:7.1f} s   {points / seconds:9,.0f} points/s   "
                  f"{args.clients * args.runs / seconds:6.2f} runs/s")
    ratio = results["sqlite:///"] / results["trackio://"]
    print(f"trackio:// throughput = {ratio:.2f} x sqlite:/// (same server, same load, same run)")


if __name__ == "__main__":
    main()
