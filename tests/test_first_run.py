"""The first screen of a user's run: what `mytracker.autolog()` prints and what leaves the machine.

Each test runs a user's script in a fresh interpreter and looks at what the user would see (its
stderr) or what would go over the network (requests reaching a local proxy).
"""

import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parent.parent

FUTURE_WARNING = "FutureWarning: `y_pred` was renamed to `y_proba`"

USER_SCRIPT = textwrap.dedent("""
    import sys, warnings
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if sys.argv[1] == "mytracker":
        import mytracker
        mytracker.autolog(dir=sys.argv[2])
    else:  # MLflow's own autologging, for comparison
        import mlflow
        mlflow.set_tracking_uri("trackio://" + sys.argv[2])
        mlflow.autolog(log_models=False, log_input_examples=False, log_model_signatures=False)

    X, y = make_classification(n_samples=200, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1)).fit(X, y)
    print("=== fit done", file=sys.stderr)
    warnings.warn("the user's own warning")
    log_loss(y, y_pred=model.predict_proba(X))  # the user's own call with the renamed argument
""")


def run_user_script(how, data_dir):
    out = subprocess.run(
        [sys.executable, "-c", USER_SCRIPT, how, str(data_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_warnings_from_mlflows_autologging_code_do_not_reach_the_user(data_dir):
    # With MLflow's own autologging, a fit prints scikit-learn's FutureWarning: MLflow's metric
    # code calls log_loss(y_pred=...).
    fit, rest = run_user_script("mlflow", data_dir).split("=== fit done")
    assert FUTURE_WARNING in fit

    fit, rest = run_user_script("mytracker", data_dir).split("=== fit done")
    assert FUTURE_WARNING not in fit
    # What the user's own code sets off still shows: the framework's warning during their fit
    # (from an estimator nested in their pipeline), their own warning, and scikit-learn's for
    # their own log_loss call: the very warning, at the very line, that autologging set off.
    assert "ConvergenceWarning: lbfgs failed to converge" in fit
    assert "UserWarning: the user's own warning" in rest
    assert rest.count(FUTURE_WARNING) == 1


# --- telemetry ----------------------------------------------------------------------------------

TELEMETRY_SCRIPT = textwrap.dedent("""
    import os, sys, time
    if sys.argv[1] == "mlflow-first":
        import mlflow  # MLflow imported (and its telemetry set up) before mytracker
    if sys.argv[1] == "mlflow-only":
        import mlflow
        mlflow.set_tracking_uri("trackio://" + sys.argv[2])
        mlflow.autolog(log_models=False)
    else:
        import mytracker
        mytracker.autolog(dir=sys.argv[2])
    import mlflow
    from mlflow.telemetry import get_telemetry_client
    with mlflow.start_run():
        mlflow.log_param("lr", 0.1)
    time.sleep(1.5)  # time for MLflow's telemetry threads to reach out
    print("CLIENT", get_telemetry_client() is not None, os.environ.get("MLFLOW_DISABLE_TELEMETRY"))
    if sys.argv[1] != "mlflow-only":
        mytracker.autolog(disable=True)
        print("RESTORED", get_telemetry_client() is not None,
              os.environ.get("MLFLOW_DISABLE_TELEMETRY"))
""")


@pytest.fixture
def proxy():
    """A local HTTP(S) proxy that records the first line of every request and answers nothing."""
    seen: list[str] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    seen.append(conn.recv(4096).decode(errors="replace").splitlines()[0])
                except (OSError, IndexError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    stop.set()
    thread.join()
    server.close()


def run_telemetry_script(how, data_dir, proxy_url, tmp_path):
    # As on a user's machine: not in pytest or CI (where MLflow turns telemetry off itself),
    # no telemetry choice made, and all HTTP(S) going through the recording proxy.
    skip = {"PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY",
            "DO_NOT_TRACK", "NO_PROXY", "no_proxy"}
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env.update(HTTPS_PROXY=proxy_url, HTTP_PROXY=proxy_url, XDG_CONFIG_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", TELEMETRY_SCRIPT, how, str(data_dir)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_mlflow_alone_sends_telemetry_here(proxy, data_dir, tmp_path):
    """The comparison that makes the next test mean something: on this machine, with this
    environment, MLflow's own autologging reaches out to its telemetry service."""
    proxy_url, seen = proxy
    run_telemetry_script("mlflow-only", data_dir, proxy_url, tmp_path)
    assert any("mlflow-telemetry" in line for line in seen), seen


@pytest.mark.parametrize("order", ["mytracker-first", "mlflow-first"])
def test_autolog_turns_mlflow_telemetry_off_and_disable_restores_it(order, proxy, data_dir, tmp_path):
    proxy_url, seen = proxy
    stdout = run_telemetry_script(order, data_dir, proxy_url, tmp_path)
    assert "CLIENT False true" in stdout
    assert seen == []  # nothing left the machine
    # Undone: MLflow's telemetry as it would be without mytracker.
    assert "RESTORED True None" in stdout


def test_autolog_keeps_the_users_telemetry_choice(tmp_path):
    code = textwrap.dedent(f"""
        import os, mytracker
        mytracker.autolog(dir={str(tmp_path / "data")!r})
        from mlflow.telemetry import get_telemetry_client
        print("CHOICE", os.environ.get("MLFLOW_DISABLE_TELEMETRY"), os.environ["DO_NOT_TRACK"])
    """)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
    env["DO_NOT_TRACK"] = "false"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "CHOICE None false" in out.stdout


# --- what the README and the docs tell a new user ---------------------------------------------


def test_readme_dashboard_command_works_as_written():
    """After the README's own install (a venv it does not activate), `trackio show` is not on
    PATH; the README names the venv's program, which `pip install -e .` puts there."""
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e ." in readme and ".venv/bin/mytracker show" in readme
    assert "pip install mytracker" not in readme
    script = Path(sys.executable).parent / "mytracker"  # this venv's, from `pip install -e`
    if not script.exists():
        pytest.skip(f"mytracker is not installed into {script.parent}")
    out = subprocess.run([str(script), "show", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: mytracker show" in out.stdout


def test_readme_python_runs_as_written(tmp_path):
    """The README's quickstart code, block after block as a reader pastes it, in a fresh
    interpreter on an empty Trackio directory: autolog, then plain MLflow with a logged model
    that loads back and is registered."""
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert any("mlflow.sklearn.log_model" in b and "register_model" in b for b in blocks)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["TRACKIO_DIR"] = str(tmp_path / "trackio")
    out = subprocess.run([sys.executable, "-c", "\n".join(blocks)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    predictions = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert len(predictions) == 2 and predictions[0] == predictions[1], out.stdout
    assert (tmp_path / "trackio" / "mlflow-registry.sqlite").exists()
    assert (tmp_path / "trackio" / "myexperiment.db").exists()


def test_docs_give_the_real_embedded_artifact_location(tmp_path, fresh_mlflow_state):
    note = tmp_path / "note.txt"
    note.write_text("hello")
    mlflow.set_tracking_uri(f"trackio://{tmp_path / 'data'}")
    mlflow.set_experiment("demo")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(note))
    documented = "<dir>/media/<project>/files/mlflow/<run name>/"
    where = documented.replace("<dir>", str(tmp_path / "data")).replace("<project>", "demo")
    assert Path(where.replace("<run name>", run.info.run_name), "note.txt").read_text() == "hello"
    for doc in ("docs/guide.md", "docs/deployment.md", "docs/migrating.md"):
        text = " ".join((ROOT / doc).read_text().split())
        assert documented in text, doc
