"""`mytracker.autolog()`: what reaches the user, what lands in Trackio, and an exact undo."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.autologging_utils.logging_and_warnings import (
    NonMlflowWarningsBehaviorForCurrentThread,
)
from mlflow.utils.autologging_utils.safety import _ERROR_MSG
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import mytracker
from mytracker._autolog import AutologFilter

MLFLOW_LOGGERS = ("mlflow", "mlflow.utils.autologging_utils", "mlflow.tracking.fluent")
autolog_logger = logging.getLogger("mlflow.utils.autologging_utils")


@pytest.fixture(autouse=True)
def clean_state(fresh_mlflow_state):
    """Leave MLflow's loggers, URI and autologging as this test found them, even on failure."""
    loggers = {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in MLFLOW_LOGGERS}
    yield
    for name, (level, disabled) in loggers.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).disabled = disabled


def our_filters():
    handler = logging.getLogger("mlflow").handlers[0]
    return [f for f in handler.filters if isinstance(f, AutologFilter)]


def all_runs(store_uri):
    client = mlflow.MlflowClient(store_uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiment_ids)


def data():
    return make_classification(n_samples=60, n_features=4, random_state=0)


# --- the log filter, through MLflow's real loggers and handler --------------------------------

COMPAT = (
    "MLflow sklearn autologging is known to be compatible with 0.24.1 <= scikit-learn <= 1.6.1, "
    "but the installed version is 9.9.9. If you encounter errors during autologging, try "
    "upgrading / downgrading scikit-learn to a compatible version, or try upgrading MLflow."
)
LEGACY = (
    "You are using an unsupported version of sklearn. If you encounter errors during "
    "autologging, try upgrading / downgrading sklearn to a supported version."
)


def emit_current():
    autolog_logger.warning(COMPAT)


def emit_legacy():
    autolog_logger.warning(LEGACY)


def emit_lightning():
    # MLflow's own rerouting: a non-MLflow warning raised while autologging runs is logged as
    # 'MLflow autologging encountered a warning: "<file>:<line>: UserWarning: <message>"'.
    with warnings.catch_warnings(), NonMlflowWarningsBehaviorForCurrentThread(
        disable_warnings=False, reroute_warnings=True
    ):
        warnings.simplefilter("always")
        warnings.warn(
            "Autologging is known to be compatible with pytorch-lightning versions between "
            "1.9.0 and 2.5.2 and may not succeed with packages outside this range."
        )


def emit_error():
    autolog_logger.warning(_ERROR_MSG.format("sklearn", ValueError("store exploded")))


def emit_exception_object():
    autolog_logger.warning(RuntimeError("store exploded as an object"))


@pytest.mark.parametrize(
    "emit, expected",
    [
        (emit_current, "autologging is known to be compatible with 0.24.1"),
        (emit_legacy, "You are using an unsupported version of sklearn"),
        (emit_lightning, "MLflow autologging encountered a warning"),
        (emit_error, "Encountered unexpected error during sklearn autologging: store exploded"),
        (emit_exception_object, "store exploded as an object"),
    ],
    ids=["current", "legacy", "lightning", "error", "non-string-exception"],
)
def test_filter_lets_compat_warnings_and_errors_through(emit, expected, store_uri, capsys):
    mytracker.autolog(dir=store_uri.removeprefix("trackio://"))
    capsys.readouterr()
    emit()
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    "emit",
    [
        lambda: logging.getLogger("mlflow.tracking.fluent").info(
            "Autologging successfully enabled for sklearn."
        ),
        lambda: autolog_logger.warning(
            'MLflow autologging encountered a warning: "x.py:1: UserWarning: some noise"'
        ),
        lambda: autolog_logger.info({"a": "non-string message"}),
        lambda: autolog_logger.warning(12345),
    ],
    ids=["info", "other-rerouted-warning", "non-string-info", "non-string-warning"],
)
def test_filter_hides_other_autologging_output(emit, store_uri, capsys):
    capsys.readouterr()
    emit()
    assert capsys.readouterr().err, "visible before autolog: the filter is what hides it"
    mytracker.autolog(dir=store_uri.removeprefix("trackio://"))
    capsys.readouterr()
    emit()
    assert capsys.readouterr().err == ""
    mytracker.autolog(disable=True)
    emit()
    assert capsys.readouterr().err


def test_filter_leaves_other_mlflow_records_alone(store_uri, capsys):
    mytracker.autolog(dir=store_uri.removeprefix("trackio://"))
    capsys.readouterr()
    logging.getLogger("mlflow.store").warning("unrelated warning")
    logging.getLogger("mlflow.tracking.fluent").info("unrelated info")
    err = capsys.readouterr().err
    assert "unrelated warning" in err and "unrelated info" in err


def test_filter_never_raises_on_unformattable_records():
    record = logging.LogRecord(
        "mlflow.utils.autologging_utils", logging.WARNING, __file__, 1, "%d", ("not a number",), None
    )
    assert AutologFilter().filter(record) is True


# --- state: on, then off exactly ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["unset", "programmatic", "env"])
def test_disable_restores_the_previous_tracking_uri(how, store_uri, tmp_path, monkeypatch):
    previous = f"sqlite:///{tmp_path}/mlflow.db"
    if how == "programmatic":
        mlflow.set_tracking_uri(previous)
    elif how == "env":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", previous)
    before = (mlflow.is_tracking_uri_set(), os.environ.get("MLFLOW_TRACKING_URI"))

    mytracker.autolog(dir=store_uri.removeprefix("trackio://"))
    assert mlflow.get_tracking_uri() == store_uri
    mytracker.autolog(disable=True)

    assert (mlflow.is_tracking_uri_set(), os.environ.get("MLFLOW_TRACKING_URI")) == before
    if how == "unset":
        assert not mlflow.is_tracking_uri_set()
    else:
        assert mlflow.get_tracking_uri() == previous
    if how == "env":  # only the variable was set: no programmatic URI may be left behind
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        assert not mlflow.is_tracking_uri_set()


def test_default_dir_is_trackios_own(trackio_home):
    mytracker.autolog()
    assert mlflow.get_tracking_uri() == "trackio://"
    assert mlflow.MlflowClient().get_experiment("0").name == "Default"


def test_disable_restores_logger_levels_flags_and_filters(store_uri):
    handler = logging.getLogger("mlflow").handlers[0]
    handler_filters = list(handler.filters)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    autolog_logger.setLevel(logging.DEBUG)
    logging.getLogger("mlflow.tracking.fluent").disabled = True  # as a framework's dictConfig does
    before = {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in MLFLOW_LOGGERS}

    mytracker.autolog(dir=store_uri.removeprefix("trackio://"))
    assert len(our_filters()) == 1
    assert not logging.getLogger("mlflow.tracking.fluent").disabled  # errors must reach the user
    mytracker.autolog(disable=True)

    assert {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in MLFLOW_LOGGERS} == before
    assert handler.filters == handler_filters


def test_enable_twice_disable_once_restores_everything(store_uri, data_dir):
    original_fit = LogisticRegression.__dict__["fit"]
    original_showwarning = warnings.showwarning
    mytracker.autolog(dir=data_dir)
    installed = our_filters()
    mytracker.autolog(dir=data_dir, log_datasets=False)
    assert our_filters() == installed and len(installed) == 1
    assert LogisticRegression.__dict__["fit"] is not original_fit
    assert warnings.showwarning is not original_showwarning

    mytracker.autolog(disable=True)
    assert warnings.showwarning is original_showwarning
    assert our_filters() == []
    assert not mlflow.is_tracking_uri_set()
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert LogisticRegression.__dict__["fit"] is original_fit


def test_fit_after_disable_logs_nothing(store_uri, data_dir):
    mytracker.autolog(dir=data_dir)
    LogisticRegression().fit(*data())
    assert len(all_runs(store_uri)) == 1
    mytracker.autolog(disable=True)

    mlflow.set_tracking_uri(store_uri)  # even pointed at the store, nothing is logged
    LogisticRegression().fit(*data())
    assert mlflow.active_run() is None
    assert len(all_runs(store_uri)) == 1


def test_disable_when_not_enabled_warns_and_changes_nothing(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    levels = {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in MLFLOW_LOGGERS}
    with pytest.warns(UserWarning, match="not enabled"):
        mytracker.autolog(disable=True)
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    assert levels == {n: (logging.getLogger(n).level, logging.getLogger(n).disabled) for n in MLFLOW_LOGGERS}
    assert our_filters() == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"log_everything": True}, "unknown option"),
        ({"dir": "relative/dir"}, None),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(kwargs, match):
    if "dir" in kwargs:  # a relative dir is made absolute: that one is fine
        mytracker.autolog(**kwargs)
        assert mlflow.get_tracking_uri() == f"trackio://{os.path.abspath('relative/dir')}"
        mytracker.autolog(disable=True)
        os.path.isdir("relative/dir") and os.removedirs("relative/dir")
        return
    with pytest.raises(MlflowException, match=match):
        mytracker.autolog(**kwargs)
    assert not mlflow.is_tracking_uri_set()
    assert our_filters() == []


def test_store_is_registered_programmatically(store_uri):
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    mytracker.autolog(dir=store_uri.removeprefix("trackio://"))
    assert _tracking_store_registry.get_store(store_uri).__class__.__name__ == "TrackioStore"


# --- end to end: scikit-learn into Trackio --------------------------------------------------------


def test_sklearn_autolog_lands_in_trackio(trackio_home, unique_name):
    from trackio.sqlite_storage import SQLiteStorage

    mytracker.init(experiment=unique_name)  # Trackio's default directory: what `trackio show` reads
    mytracker.autolog()
    model = LogisticRegression(C=0.5).fit(*data())
    run_id = mlflow.last_active_run().info.run_id
    mytracker.autolog(disable=True)
    assert model.coef_.shape == (1, 4)

    # A new process, knowing only the experiment name.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    code = textwrap.dedent(f"""
        import mytracker
        df = mytracker.get_experiment_df({unique_name!r})
        print(df.to_json(orient="records"))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["run_id"] == run_id
    assert row["status"] == "FINISHED"
    assert row["param.C"] == 0.5  # numbers, as in Vertex
    assert 0.5 < row["metric.training_accuracy_score"] <= 1.0

    # Trackio's own reader sees the same run, its params as config keys and its metrics.
    [record] = SQLiteStorage.get_run_records(unique_name)
    assert record["id"] == run_id
    config = SQLiteStorage.get_run_config(unique_name, run_id=run_id)
    assert config["C"] == "0.5" and config["_mlflow_status"] == "FINISHED"
    logs = SQLiteStorage.get_logs(unique_name, run_id=run_id)
    accuracy = [log["training_accuracy_score"] for log in logs if "training_accuracy_score" in log]
    assert accuracy == [pytest.approx(row["metric.training_accuracy_score"])]


# --- Lightning: either import order works ------------------------------------------------------------

LIGHTNING_SCRIPT = """
import os, sys
import mytracker
if sys.argv[1] == "lightning-first":
    import lightning
mytracker.autolog(dir=sys.argv[2])
import lightning as L
import torch

class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
import mlflow
run = mlflow.last_active_run()
print("RUN", run.info.run_id, run.info.status, sorted(run.data.metrics))
mytracker.autolog(disable=True)
"""


@pytest.mark.heavy
@pytest.mark.parametrize("order", ["lightning-first", "autolog-first"])
def test_lightning_is_patched_whatever_the_import_order(order, tmp_path, data_dir):
    pytest.importorskip("lightning")
    script = tmp_path / "train.py"
    script.write_text(LIGHTNING_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), order, str(data_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "circular import" not in out.stderr
    [line] = [line for line in out.stdout.splitlines() if line.startswith("RUN ")]
    _, run_id, status, metrics = line.split(" ", 3)
    assert status == "FINISHED" and "train_loss" in metrics
    run = mlflow.MlflowClient(f"trackio://{data_dir}").get_run(run_id)
    assert [m.step for m in mlflow.MlflowClient(f"trackio://{data_dir}").get_metric_history(run_id, "train_loss")] == [0, 1]
    assert run.data.params["epochs"] == "2"


def test_filter_without_mlflows_handler(tmp_path):
    """With MLFLOW_CONFIGURE_LOGGING=false MLflow adds no handler and its records go to the root
    logger's handlers; the filter then sits on the loggers that speak, and still comes off."""
    code = textwrap.dedent(f"""
        import logging, sys
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
        import mytracker
        mytracker.autolog(dir={str(tmp_path)!r})
        fluent = logging.getLogger("mlflow.tracking.fluent")
        utils = logging.getLogger("mlflow.utils.autologging_utils")
        fluent.info("Autologging successfully enabled for hidden.")
        utils.warning({COMPAT!r})
        mytracker.autolog(disable=True)
        fluent.info("Autologging successfully enabled for shown-after-disable.")
        print("FILTERS", len(fluent.filters) + len(utils.filters))
    """)
    env = {**os.environ, "MLFLOW_CONFIGURE_LOGGING": "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "hidden" not in out.stdout
    assert "is known to be compatible with" in out.stdout
    assert "shown-after-disable" in out.stdout
    assert "FILTERS 0" in out.stdout
