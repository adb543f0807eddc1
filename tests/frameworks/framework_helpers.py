"""Small helpers the framework tests share (plain functions; fixtures live in conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse


def artifact_files(run) -> set[str]:
    """Paths (relative, with '/') of the files under a run's local artifact URI."""
    root = Path(urlparse(run.info.artifact_uri).path)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def run_python(
    code: str, env: dict[str, str], cwd=None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run a user's script in a fresh interpreter (import order matters to some frameworks)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )
