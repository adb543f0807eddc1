"""Start `mytracker server` / `mytracker show` as real processes on loopback, and always stop them.

    with mytracker_server(data_dir, workers=4, log_path=...) as url:
        MlflowClient(url).search_experiments()

Each server runs in its own process group; leaving the `with` block (also on a failing test)
stops the whole group: MLflow's server parent and its uvicorn workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

MYTRACKER = [sys.executable, "-m", "mytracker.cli"]
# Four uvicorn workers each import MLflow's server: slow on a busy 2-core machine.
START_TIMEOUT_S = 150


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def mytracker_server(data_dir: Path, *, workers: int, log_path: Path):
    """`mytracker server --dir DATA_DIR --workers N` on a free loopback port; yields its URL."""
    port = free_port()
    command = MYTRACKER + [
        "server", "--dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers),
    ]
    url = f"http://127.0.0.1:{port}"
    with _running(command, url + "/health", log_path):
        yield url


@contextmanager
def trackio_dashboard(data_dir: Path, *, log_path: Path, extra_args: tuple[str, ...] = ()):
    """`mytracker show --dir DATA_DIR` on a free loopback port; yields its URL."""
    port = free_port()
    command = MYTRACKER + [
        "show", "--dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port), "--no-browser",
        *extra_args,
    ]
    url = f"http://127.0.0.1:{port}"
    with _running(command, url + "/", log_path):
        yield url


@contextmanager
def _running(command: list[str], ready_url: str, log_path: Path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        _wait_ready(process, ready_url, log_path)
        yield process
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url} exited with code {process.returncode} before it was ready:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"{url} not ready after {START_TIMEOUT_S}s:\n"
        + log_path.read_text(errors="replace")[-4000:]
    )


def _stop(process: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        # The group leader is gone; make sure no worker of the group outlives it.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
