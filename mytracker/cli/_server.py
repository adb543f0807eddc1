"""``mytracker server`` and ``mytracker show``: MLflow's tracking server and Trackio's dashboard
over one Trackio data directory.

    mytracker server --dir /data/trackio --host 0.0.0.0 --port 5000 --workers 4
    mytracker show --dir /data/trackio --port 7860

``server`` runs MLflow's own ``mlflow server`` with the ``trackio://`` store as its backend, so
remote clients log with ``MLFLOW_TRACKING_URI=http://host:5000`` and every run lands in the
Trackio project files under ``--dir``; ``show`` runs Trackio's dashboard on the same files.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path

from mytracker.cli._common import UsageError, add_dir_option, data_dir, fail
from mytracker.store._uri import REGISTRY_FILE, store_uri

ARTIFACTS_DIR = "mlflow-artifacts"


def add_commands(subparsers) -> None:
    server = subparsers.add_parser(
        "server",
        help="MLflow's tracking server (REST API + UI) on the Trackio store",
        description=(
            "Start MLflow's tracking server with the Trackio store as its backend: runs logged "
            "through http://HOST:PORT land in Trackio project files under --dir. Artifacts are "
            f"proxied into DIR/{ARTIFACTS_DIR}; the model registry lives in DIR/{REGISTRY_FILE}."
        ),
    )
    add_dir_option(server)
    server.add_argument(
        "--host", default="127.0.0.1",
        help="interface to bind (default: 127.0.0.1; use 0.0.0.0 to serve other machines)",
    )
    server.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    server.add_argument(
        "--workers", type=int, default=4, help="server worker processes (default: 4)"
    )
    server.add_argument(
        "--allowed-hosts", default=None,
        help="passed to 'mlflow server --allowed-hosts' (Host headers to accept when serving "
        "other machines by name, e.g. 'tracker.example.com,10.0.0.*')",
    )
    server.set_defaults(run=run_server)

    show = subparsers.add_parser(
        "show",
        help="Trackio's dashboard on the same data",
        description="Start Trackio's dashboard ('trackio show') on the Trackio data in --dir.",
    )
    add_dir_option(show)
    show.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    show.add_argument(
        "--port", type=int, default=None,
        help="port (default: Trackio's, the first free one from $GRADIO_SERVER_PORT or 7860)",
    )
    show.add_argument(
        "--project", default=None,
        help="open this MLflow experiment (by its name) or Trackio project first (default: the "
        "project written most recently)",
    )
    show.add_argument(
        "--no-browser", action="store_true", help="do not open a browser tab"
    )
    show.set_defaults(run=run_show)


def server_command(data_dir: Path, host: str, port: int, workers: int,
                   allowed_hosts: str | None = None) -> list[str]:
    """The ``mlflow server`` command line that ``mytracker server`` runs.

    >>> server_command(Path("/data"), "127.0.0.1", 5000, 4)[3:5]
    ['--backend-store-uri', 'trackio:///data']
    """
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store_uri(data_dir),
        "--registry-store-uri", f"sqlite:///{data_dir / REGISTRY_FILE}",
        "--serve-artifacts",
        "--artifacts-destination", str(data_dir / ARTIFACTS_DIR),
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]
    if allowed_hosts:
        command += ["--allowed-hosts", allowed_hosts]
    return command


def run_server(args: argparse.Namespace) -> int:
    try:
        directory = data_dir(args.dir, create=True)
        if args.workers < 1:
            raise UsageError(f"--workers must be at least 1, not {args.workers}")
        _check_port_free(args.host, args.port)
    except UsageError as error:
        return fail("server", error, 2)
    command = server_command(directory, args.host, args.port, args.workers, args.allowed_hosts)
    print(
        f"mytracker: MLflow server on {store_uri(directory)} at http://{args.host}:{args.port} "
        f"({args.workers} workers); clients use MLFLOW_TRACKING_URI=http://{args.host}:{args.port}",
        file=sys.stderr, flush=True,
    )
    # Replace this process: signals (Ctrl-C, SIGTERM from a supervisor) go straight to MLflow.
    os.execve(sys.executable, command, _child_env(directory))
    return 0  # not reached


_SHOW = """\
import sys
import trackio
host, port, project, open_browser = sys.argv[1:5]
trackio.show(project=project or None, host=host, server_port=int(port) if port else None,
             open_browser=open_browser == "1", block_thread=True)
"""


def run_show(args: argparse.Namespace) -> int:
    try:
        directory = data_dir(args.dir, create=False)
        if not os.access(directory, os.W_OK | os.X_OK):
            # Trackio's dashboard takes each project's <project>.lock (and migrates) at start.
            raise UsageError(
                f"--dir {directory} is not writable, and Trackio's dashboard writes lock files "
                "beside the projects: run it as a user who may write there, or on a copy"
            )
        if args.port is not None:
            _check_port_free(args.host, args.port)
        project = project_to_open(directory, args.project)
    except UsageError as error:
        return fail("show", error, 2)
    print(
        f"mytracker: Trackio dashboard on {directory}"
        + (f", opening project {project!r}" if project else ""),
        file=sys.stderr, flush=True,
    )
    # Trackio reads TRACKIO_DIR once, at import: run it in a fresh interpreter that has it set.
    argv = [
        sys.executable, "-c", _SHOW, args.host, "" if args.port is None else str(args.port),
        project or "", "0" if args.no_browser else "1",
    ]
    os.execve(sys.executable, argv, _child_env(directory))
    return 0  # not reached


def project_to_open(directory: Path, name: str | None) -> str | None:
    """The Trackio project ``show`` opens first: the file of the MLflow experiment called
    `name` (its file name is derived from the name, so ``my experiment`` is ``myexperiment``,
    or ``myexperiment-2`` after a collision), else a plain Trackio project of that name; with no
    name, the project whose last metric row is newest (Trackio would open the alphabetically first).
    """
    if name is None:
        from mytracker.store._db import last_logged

        written = [(last_logged(path) or "", path.stem) for path in directory.glob("*.db")]
        return max(written)[1] if written else None
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    from mytracker.store._store import TrackioStore

    try:
        store = TrackioStore(store_uri(directory))
        experiment = store.get_experiment_by_name(name)
        path = store.project_file(experiment.experiment_id) if experiment else None
        names = [e.name for e in store.search_experiments(view_type=ViewType.ALL)]
    except MlflowException as error:
        raise UsageError(error.message) from None
    if path is not None:
        return path.stem
    if experiment is None and (directory / f"{name}.db").is_file():
        return name  # a Trackio project that is no MLflow experiment
    if experiment is not None:
        raise UsageError(f"experiment {name!r} has no runs yet, so Trackio has nothing to show")
    listed = ", ".join(repr(n) for n in sorted(names)) or "none"
    raise UsageError(f"no experiment named {name!r} in {directory}; experiments: {listed}")


def _check_port_free(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UsageError(f"--host {host!r} is not an address this machine has: {error}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is already in use") from None
            raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def _child_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TRACKIO_DIR"] = str(data_dir)
    return env
