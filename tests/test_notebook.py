"""The examples run as users run them: the notebook in a real Jupyter kernel, the scripts as
plain processes on a "fresh machine" (no Trackio or Hugging Face settings)."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


pytestmark = pytest.mark.heavy  # a real Jupyter kernel and fresh interpreters

def test_quickstart_notebook_executes(trackio_home, tmp_path, fresh_mlflow_state):
    from trackio.sqlite_storage import SQLiteStorage

    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    # The kernel inherits this process's environment: TRACKIO_DIR is the session's Trackio home.
    NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [
        output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs
    ]
    text = "\n".join(outputs)
    assert "Encountered unexpected error" not in text and "Traceback" not in text
    assert "FINISHED" in text
    assert "trackio show --project quickstart-notebook" in text

    runs = SQLiteStorage.get_run_records("quickstart-notebook")
    assert len(runs) == 2  # the autologged fit and the manual run
    names = {run["name"] for run in runs}
    assert any(name.startswith("manual-") for name in names)


@pytest.mark.parametrize("script", ["quickstart.py", "manual_api.py"])
def test_example_script_runs_on_a_fresh_machine(script, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRACKIO_", "HF_", "MLFLOW_", "XDG_"))}
    env["HOME"] = str(tmp_path)
    env["HF_HUB_OFFLINE"] = "1"  # no network at test time; it does not move any data
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert "FINISHED" in out.stdout
    assert "/mytracker show --project" in out.stdout  # the venv's program: works unactivated
    project = "quickstart" if script == "quickstart.py" else "manual-api"
    db = tmp_path / ".cache" / "huggingface" / "trackio" / f"{project}.db"
    assert db.exists()
    if script == "quickstart.py":
        assert f"Data written to {db}" in out.stdout
