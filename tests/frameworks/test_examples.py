"""Every framework example runs as a user would run it, and lands a project in Trackio's
default directory (here a fresh one per example), so the examples cannot rot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "frameworks").glob("*_example.py"))


@pytest.mark.heavy
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_lands_in_trackio(script, tmp_path):
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    projects = {p.stem for p in (tmp_path / "trackio").glob("*.db")} - {"Default"}
    assert projects, f"{script.name} wrote no Trackio project"
