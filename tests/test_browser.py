"""Both UIs over one Trackio data directory, in a real headless Chromium.

MLflow's UI is served by `mytracker server` (MLflow's own server on the Trackio store); Trackio's
dashboard by `mytracker show`. Screenshots go to the test's tmp directory (printed), those of the
MLflow UI page tour to `test-artifacts/mlflow-ui/` in the repository (gitignored; a CI job can
keep that folder as its artifact).
Needs Debian's `chromium` and `chromium-driver` and the `selenium` package; a missing browser
fails the test with an install hint, it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import mlflow
import mytracker
import pytest

from servers import mytracker_server, trackio_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.heavy]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
]
PAGE_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install the browser with "
            "`apt-get update && apt-get install -y chromium chromium-driver`"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: `pip install selenium`")
    os.environ["SE_OFFLINE"] = "true"  # never let selenium-manager download a driver
    profile = tempfile.mkdtemp(prefix="mytracker-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # "performance" records every response the page receives (Network.responseReceived).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """A run logged through `mytracker server` into a fresh Trackio directory; the server stays
    up for the MLflow UI test."""
    data_dir = tmp_path_factory.mktemp("browser-data")
    log_path = tmp_path_factory.mktemp("browser-logs") / "server.log"
    with mytracker_server(data_dir, workers=2, log_path=log_path) as url:
        mlflow.set_tracking_uri(url)
        try:
            mlflow.set_experiment("browser-experiment")
            with mlflow.start_run(run_name="browser-run") as run:
                mlflow.log_params({"learning_rate": 0.003, "batch_size": 64})
                for step in range(30):
                    mlflow.log_metric("val_accuracy", 0.5 + step / 100, step=step)
        finally:
            mlflow.set_tracking_uri(None)
        yield {"url": url, "dir": data_dir, "run": run, "log": log_path}


def wait_for_text(driver, *texts: str, timeout: float = PAGE_TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = driver.find_element("tag name", "body").text
        if all(text in body for text in texts):
            return body
        time.sleep(0.5)
    missing = [text for text in texts if text not in body]
    raise AssertionError(f"{missing} never appeared; the page showed:\n{body[:3000]}")


def wait_for_chart(driver, css: str, timeout: float = PAGE_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        charts = [c for c in driver.find_elements("css selector", css) if c.is_displayed()]
        if charts and charts[0].size["height"] > 50:
            return charts[0]
        time.sleep(0.5)
    raise AssertionError(f"no chart ({css}) rendered")


def assert_no_error_banner(driver):
    banners = [e.text for e in driver.find_elements("css selector", '[role="alert"]')
               if e.is_displayed() and e.text.strip()]
    assert not banners, banners
    body = driver.find_element("tag name", "body").text
    for words in ("Something went wrong", "Internal Server Error", "Error:"):
        assert words not in body


def server_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if "status of 5" in entry["message"]]


def test_mlflow_ui_over_the_trackio_store(browser, logged_run, tmp_path):
    url, run = logged_run["url"], logged_run["run"]
    experiment_id, run_id = run.info.experiment_id, run.info.run_id
    try:
        browser.get(f"{url}/#/experiments")
        wait_for_text(browser, "browser-experiment", "Default")
        browser.save_screenshot(str(tmp_path / "mlflow-experiments.png"))
        assert_no_error_banner(browser)

        browser.get(f"{url}/#/experiments/{experiment_id}/runs/{run_id}")
        wait_for_text(browser, "browser-run", "Parameters (2)", "learning_rate", "0.003",
                      "batch_size", "64", "val_accuracy")
        browser.save_screenshot(str(tmp_path / "mlflow-run.png"))
        assert_no_error_banner(browser)

        browser.get(f"{url}/#/experiments/{experiment_id}/runs/{run_id}/model-metrics")
        wait_for_text(browser, "val_accuracy", "Step")
        chart = wait_for_chart(browser, ".js-plotly-plot")
        assert chart.find_elements("css selector", "path.js-line"), "the chart has no line"
        browser.save_screenshot(str(tmp_path / "mlflow-metric-chart.png"))
        assert_no_error_banner(browser)
        assert server_errors(browser) == []
    finally:
        print(f"screenshots in {tmp_path}")
    assert " 500 " not in logged_run["log"].read_text(errors="replace")


def test_trackio_dashboard_over_the_same_data(browser, logged_run, tmp_path):
    run = logged_run["run"]
    with trackio_dashboard(logged_run["dir"], log_path=tmp_path / "show.log") as url:
        try:
            browser.get(f"{url}/?project=browser-experiment")
            wait_for_text(browser, "browser-experiment", "browser-run", "val_accuracy")
            wait_for_chart(browser, ".plot-container .plot svg, .plot-container .plot canvas")
            titles = [t.text for t in browser.find_elements("css selector", ".plot-title")]
            assert "val_accuracy" in titles
            browser.save_screenshot(str(tmp_path / "trackio-metrics.png"))

            browser.get(f"{url}/run?project=browser-experiment&selected_run_id={run.info.run_id}")
            wait_for_text(browser, "browser-run", "Configuration", '"learning_rate": "0.003"',
                          '"batch_size": "64"', "val_accuracy")
            browser.save_screenshot(str(tmp_path / "trackio-run.png"))
            assert server_errors(browser) == []
        finally:
            print(f"screenshots in {tmp_path}")


# --- issue #16: what MLflow logs, as a person sees it in Trackio's dashboard ------------------

SCREENSHOTS = os.environ.get("MYTRACKER_SCREENSHOTS")  # keep them here (e.g. for docs/images)


def screenshot(driver, directory, name):
    path = directory / name
    driver.save_screenshot(str(path))
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        shutil.copy(path, os.path.join(SCREENSHOTS, name))
    return path


def opened_url(show_log, timeout: float = PAGE_TIMEOUT_S) -> str:
    """The address `mytracker show` prints (and would open): it names the project shown first."""
    import re

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"launched at: (\S+)", show_log.read_text(errors="replace"))
        if found:
            return re.sub(r"\x1b\[[0-9;]*m", "", found[1])
        time.sleep(0.5)
    raise AssertionError(f"no address in {show_log}:\n{show_log.read_text(errors='replace')}")


def pick(driver, dropdown_label: str, choice: str) -> None:
    box = driver.find_element("css selector", f'input[aria-label="{dropdown_label}"]')
    box.click()
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        items = [li for li in driver.find_elements("css selector", "li.item")
                 if li.text.strip().endswith(choice) and li.is_displayed()]
        if items:
            from selenium.webdriver.common.action_chains import ActionChains

            ActionChains(driver).move_to_element(items[0]).click().perform()
            return
        time.sleep(0.3)
    raise AssertionError(f"no {choice!r} in the {dropdown_label!r} dropdown")


def test_the_dashboard_shows_mlflow_runs_as_a_person_expects(browser, tmp_path):
    """Two experiments logged with MLflow (autolog with GridSearchCV, a single-step run, a live
    run logging images), then `mytracker show` with no --project."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    import numpy as np

    data_dir = tmp_path / "data"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")
    mlflow.set_tracking_uri(f"trackio://{data_dir}")
    try:
        mlflow.set_experiment("aaa older experiment")
        with mlflow.start_run(run_name="old-run"):
            mlflow.log_metric("loss", 1.0)
        time.sleep(0.01)
        mlflow.set_experiment("churn model")
        mytracker.autolog()  # MLflow's autolog, models not logged
        X, y = make_classification(n_samples=80, n_features=4, random_state=0)
        with mlflow.start_run(run_name="grid-search"):
            GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
        mytracker.autolog(disable=True)
        with mlflow.start_run(run_name="single-step"):
            mlflow.log_metrics({"val_loss": 0.42, "val_accuracy": 0.81}, step=0)
        live = mlflow.start_run(run_name="live-images")
        rng = np.random.default_rng(0)
        for step in range(3):
            mlflow.log_metric("train_loss", 1 / (step + 1), step=step)
            mlflow.log_image(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8),
                             key="samples", step=step)
        mlflow.flush_artifact_async_logging()
        time.sleep(1.0)  # the store reads a live run's new images at most once a second
        mlflow.log_metric("train_loss", 0.2, step=3)  # live: still RUNNING while we look
        mlflow.flush_async_logging()

        show_log = tmp_path / "show.log"
        with trackio_dashboard(data_dir, log_path=show_log) as url:
            first = opened_url(show_log)
            assert first == f"{url}/?project=churnmodel", first  # written last, not a-z first
            browser.get(first)
            wait_for_text(browser, "churnmodel", "grid-search", "single-step", "live-images")
            pick(browser, "Group by", "Group")
            wait_for_text(browser, "(unset)")
            groups = {g.text: c.text for g, c in zip(
                browser.find_elements("css selector", ".run-group-label"),
                browser.find_elements("css selector", ".run-group-count"))}
            assert groups.get("grid-search") == "(3)", groups  # the search and its 2 children
            wait_for_chart(browser, ".plot-container .plot svg, .plot-container .plot canvas")
            titles = [t.text for t in browser.find_elements("css selector", ".plot-title")]
            assert not [t for t in titles if t.endswith(".png")], titles
            screenshot(browser, shots, "dashboard-runs.png")

            browser.get(f"{url}/runs?project=churnmodel")
            wait_for_text(browser, "single-step", "STEPS")
            rows = {}
            for tr in browser.find_elements("css selector", "tbody tr"):
                cells = [td.text for td in tr.find_elements("css selector", "td")]
                for name in ("single-step", "live-images", "grid-search"):
                    if name in cells:
                        rows[name] = cells
            header = [th.text.strip().lower()
                      for th in browser.find_elements("css selector", "thead th")]
            steps, last = header.index("steps"), header.index("last step")
            assert (rows["single-step"][steps], rows["single-step"][last]) == ("1", "0"), rows
            assert (rows["grid-search"][steps], rows["grid-search"][last]) == ("1", "0"), rows
            # 4 metric steps; its images joined their steps' rows
            assert (rows["live-images"][steps], rows["live-images"][last]) == ("4", "3"), rows
            screenshot(browser, shots, "dashboard-steps.png")

            browser.get(f"{url}/media?project=churnmodel")
            wait_for_text(browser, "samples (step 0)", "samples (step 1)", "samples (step 2)")
            screenshot(browser, shots, "dashboard-media.png")

            browser.find_element("xpath", "//*[normalize-space(text())='Files']").click()
            wait_for_text(browser, "mlflow/grid-search/training_confusion_matrix.png")
            assert live.info.run_id not in browser.find_element("tag name", "body").text
            screenshot(browser, shots, "dashboard-files.png")
            assert server_errors(browser) == []
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)


# --- issue #14: every MLflow UI page a tracking user visits, with models and the registry ------

UI_SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "mlflow-ui"


@pytest.fixture(scope="module")
def logged_models(tmp_path_factory):
    """What a user logs on trackio:// before opening `mytracker server` on the same directory: a
    run with params, metrics over steps and a text artifact; a scikit-learn model logged with
    `mlflow.sklearn.log_model`, with a metric linked to it; the model registered with an alias."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mytracker.store import register

    register()  # from a source checkout; installed packages get the registry by entry point
    data_dir = tmp_path_factory.mktemp("ui-models-data")
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.0, 0.0], [0.2, 0.9]])
    y = np.array([0, 1, 1, 1, 0, 0])
    mlflow.set_tracking_uri(f"trackio://{data_dir}")
    try:
        experiment_id = mlflow.set_experiment("ui-models").experiment_id
        with mlflow.start_run(run_name="ui-run") as run:
            mlflow.log_params({"C": 0.5, "solver": "lbfgs"})
            for step in range(5):
                mlflow.log_metrics({"train_loss": 1 / (step + 1), "val_acc": 0.6 + step / 20},
                                   step=step)
            mlflow.log_text("hello from the run", "notes/readme.txt")
            info = mlflow.sklearn.log_model(
                LogisticRegression(C=0.5).fit(X, y), name="churn-classifier",
                input_example=X[:2], pip_requirements=["scikit-learn"],
            )
            mlflow.log_metric("test_acc", 0.83, model_id=info.model_id)
        version = mlflow.register_model(f"models:/{info.model_id}", "churn-registered")
        mlflow.MlflowClient().set_registered_model_alias("churn-registered", "champion",
                                                         version.version)
    finally:
        mlflow.set_tracking_uri(None)
    return {"dir": data_dir, "experiment_id": experiment_id, "run": run, "model": info,
            "version": str(version.version)}


def responses(driver) -> list[tuple[int, str]]:
    """(status, url) of every HTTP response the page received since the last call (Chromium's
    performance log, drained by reading it)."""
    import json

    received = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            received.append((int(response["status"]), response["url"]))
    return received


def test_every_mlflow_ui_page_over_the_trackio_store(browser, logged_models, tmp_path):
    """Each page a tracking user opens in MLflow's UI, served by `mytracker server`: it shows the
    logged data, and no request the page makes answers 5xx. One model is logged on trackio://
    (see `logged_models`), another by a remote client through the server's REST API."""
    experiment_id, run = logged_models["experiment_id"], logged_models["run"]
    run_id, model_id = run.info.run_id, logged_models["model"].model_id
    version = logged_models["version"]
    run_page = f"experiments/{experiment_id}/runs/{run_id}"
    pages = [  # (screenshot name, route, what a person reads there)
        ("01-experiments", "experiments", ["ui-models", "Default"]),
        ("02-experiment-runs", f"experiments/{experiment_id}/runs", ["ui-run"]),
        ("03-run", run_page, ["ui-run", "Parameters (2)", "solver", "lbfgs", "train_loss",
                              "churn-classifier"]),
        ("04-run-metric-charts", f"{run_page}/model-metrics", ["train_loss", "val_acc"]),
        ("05-run-artifacts", f"{run_page}/artifacts", ["notes"]),
        ("06-run-artifact-file", open_file("notes", "readme.txt"),
         ["readme.txt", "hello from the run"]),
        ("07-experiment-models", f"experiments/{experiment_id}/models",
         ["churn-classifier", "ui-run"]),
        ("08-logged-model", f"experiments/{experiment_id}/models/{model_id}",
         ["churn-classifier", model_id, "test_acc", "0.83", "ui-run"]),
        ("09-logged-model-artifacts", f"experiments/{experiment_id}/models/{model_id}/artifacts",
         ["MLmodel", "model.skops", "requirements.txt"]),
        ("10-registered-models", "models", ["churn-registered", f"Version {version}"]),
        ("11-registered-model", "models/churn-registered",
         ["churn-registered", f"Version {version}", "champion"]),
        ("12-model-version", f"models/churn-registered/versions/{version}",
         ["churn-registered", f"Version {version}", "champion"]),
    ]
    UI_SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {UI_SHOTS}")
    failures, api_calls = [], 0
    with mytracker_server(logged_models["dir"], workers=2, log_path=tmp_path / "server.log") as url:
        remote = log_model_through_server(url)
        pages.append((
            "13-remote-logged-model",
            f"experiments/{remote.experiment_id}/models/{remote.model_id}/artifacts",
            ["remote-classifier", "MLmodel", "model.skops"],
        ))
        responses(browser)  # forget what earlier tests' pages received
        for name, route, texts in pages:
            if callable(route):
                route(browser)  # a click on the page already open
            else:
                browser.get(f"{url}/#/{route}")
            if name == "01-experiments":
                show_model_training_view(browser)
            try:
                wait_for_text(browser, *texts)
                if name == "04-run-metric-charts":
                    wait_for_chart(browser, ".js-plotly-plot")
                close_popups(browser)  # e.g. the registry's one-time "new UI" announcement
                assert_no_error_banner(browser)
            except AssertionError as error:
                failures.append(f"{name}: {error}"[:1500])
            time.sleep(1.0)  # the page's late requests (charts, counts) answer too
            browser.save_screenshot(str(UI_SHOTS / f"{name}.png"))
            received = responses(browser)
            api_calls += sum("/ajax-api/" in address for _, address in received)
            failures += [f"{name}: HTTP {status} for {address}"
                         for status, address in received if status >= 500]
    assert failures == [], "\n".join(failures)
    assert api_calls > len(pages), "the network log saw no calls of MLflow's REST API"
    server_log = (tmp_path / "server.log").read_text(errors="replace")
    assert " 500 " not in server_log and "Traceback" not in server_log, server_log[-3000:]


def open_file(*path: str):
    """Click through the artifact tree to a file (the preview is not a route of its own)."""
    def click(driver):
        for name in path:
            find_by_text(driver, name).click()
    return click


def find_by_text(driver, text: str, timeout: float = PAGE_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in driver.find_elements("xpath", f"//*[normalize-space(text())='{text}']")
                 if e.is_displayed()]
        if found:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"nothing reading {text!r} on the page")


def show_model_training_view(driver):
    """What a tracking user picks once (MLflow keeps it in local storage): the "Model training"
    side of the UI, and the assistant panel closed, so screenshots show the page itself."""
    find_by_text(driver, "Model training").click()
    close_popups(driver)


def close_popups(driver):
    for button in driver.find_elements("css selector", 'button[aria-label="Close"]'):
        if button.is_displayed():
            button.click()


def log_model_through_server(url: str):
    """A remote client's run and model (MLFLOW_TRACKING_URI=http://...): the artifacts travel
    through the server's proxy; the model loads back through it."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    mlflow.set_tracking_uri(url)
    try:
        mlflow.set_experiment("ui-remote")
        with mlflow.start_run(run_name="remote-run"):
            info = mlflow.sklearn.log_model(LogisticRegression().fit(X, y),
                                            name="remote-classifier",
                                            pip_requirements=["scikit-learn"])
        loaded = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
        assert list(loaded.predict(X)) == [0, 0, 1, 1]
        return mlflow.get_logged_model(info.model_id)
    finally:
        mlflow.set_tracking_uri(None)


def runs_table(driver) -> dict[str, tuple[str, str]]:
    """The Runs page's table as a person reads it: run name -> (Steps, Last Step)."""
    header = [th.text.strip().lower() for th in driver.find_elements("css selector", "thead th")]
    name, steps, last = (header.index(h) for h in ("run name", "steps", "last step"))
    table = {}
    for tr in driver.find_elements("css selector", "tbody tr"):
        cells = [td.text.strip() for td in tr.find_elements("css selector", "td")]
        table[cells[name]] = (cells[steps], cells[last])
    return table


def test_the_readme_and_sklearn_example_as_a_person_sees_them(browser, tmp_path):
    """The README's commands (examples/quickstart.py, then `mytracker show --project quickstart`)
    and the scikit-learn example: every fit is one step in Trackio's Runs table, its metric
    charts carry no image files, and the grid search's runs group under it."""
    import subprocess
    import sys
    from pathlib import Path

    examples = Path(__file__).resolve().parents[1] / "examples"
    data_dir = tmp_path / "trackio"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots in {shots}")
    env = {**os.environ, "TRACKIO_DIR": str(data_dir)}
    env.pop("MLFLOW_TRACKING_URI", None)
    for script in (examples / "quickstart.py", examples / "frameworks" / "sklearn_example.py"):
        result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]

    show_log = tmp_path / "show.log"
    with trackio_dashboard(data_dir, log_path=show_log, extra_args=("--project", "quickstart")) \
            as url:
        browser.get(opened_url(show_log))
        wait_for_text(browser, "quickstart", "training_accuracy_score")
        wait_for_chart(browser, ".plot-container .plot svg, .plot-container .plot canvas")
        titles = [t.text for t in browser.find_elements("css selector", ".plot-title")]
        assert "training_accuracy_score" in titles and not [t for t in titles if ".png" in t]
        screenshot(browser, shots, "quickstart-metrics.png")
        browser.get(f"{url}/runs?project=quickstart")
        wait_for_text(browser, "STEPS")
        table = runs_table(browser)
        assert list(table.values()) == [("1", "0")], table
        screenshot(browser, shots, "quickstart-runs.png")

        browser.get(f"{url}/runs?project=sklearn-example")
        wait_for_text(browser, "logistic-regression", "pipeline", "grid-search")
        table = runs_table(browser)
        assert len(table) == 6 and set(table.values()) == {("1", "0")}, table  # 3 + 3 children
        screenshot(browser, shots, "sklearn-runs.png")

        browser.get(f"{url}/?project=sklearn-example")
        wait_for_text(browser, "grid-search", "training_score")
        pick(browser, "Group by", "Group")
        wait_for_text(browser, "(unset)")
        groups = {g.text: c.text for g, c in zip(
            browser.find_elements("css selector", ".run-group-label"),
            browser.find_elements("css selector", ".run-group-count"))}
        assert groups == {"grid-search": "(4)", "(unset)": "(2)"}, groups
        wait_for_chart(browser, ".plot-container .plot svg, .plot-container .plot canvas")
        screenshot(browser, shots, "sklearn-grouped.png")
        assert server_errors(browser) == []
