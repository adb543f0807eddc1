"""A Vertex-AI-style manual API (``google.cloud.aiplatform`` names and shapes) on the trackio store.

It drives MLflow's own fluent API, so a run started here is MLflow's active run: an autologged
``fit`` inside ``start_run(...)`` logs into it.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import ActiveRun

_experiment: str | None = None  # set by init(); MLflow's own state holds everything else
_last_step: dict[str, int] = {}  # run id -> largest step logged by log_time_series_metrics
# Vertex's run states, mapped onto MLflow's terminal statuses.
_STATES = {"COMPLETE": "FINISHED", "CANCELLED": "KILLED"}
_TERMINAL = ("FINISHED", "FAILED", "KILLED")


def init(experiment: str | None = None, dir: str | os.PathLike | None = None) -> None:
    """Point MLflow at a Trackio data directory and select (creating if needed) an experiment.

    >>> mytracker.init(experiment="churn", dir="/tmp/trackio-data")  # doctest: +SKIP
    """
    global _experiment
    import mlflow

    from mytracker.store import register
    from mytracker.store._uri import store_uri

    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        _bad(f"experiment must be a non-empty string, got {experiment!r}")
    uri = store_uri(dir)
    register()
    mlflow.set_tracking_uri(uri)
    if experiment is not None:
        mlflow.set_experiment(experiment)
        _experiment = experiment


def start_run(run: str, *, resume: bool = False) -> ActiveRun:
    """Start (or with ``resume=True`` reopen) the run named ``run`` in the ``init`` experiment.

    Also a context manager: the run ends when the block does (FAILED on an exception).

    >>> with mytracker.start_run("run-1"):  # doctest: +SKIP
    ...     mytracker.log_params({"lr": 0.1})
    """
    import mlflow
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST

    if not isinstance(run, str) or not run.strip():
        _bad(f"run must be a non-empty string, got {run!r}")
    experiment = _require_experiment()
    quote = "'" if "'" not in run else '"'
    if quote in run:
        _bad(f"run names cannot contain both ' and \", got {run!r}")
    existing = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"attributes.run_name = {quote}{run}{quote}",
        output_format="list",
        max_results=1,
    )
    if resume:
        if not existing:
            _bad(f"No run named {run!r} in experiment {experiment.name!r} to resume.",
                 RESOURCE_DOES_NOT_EXIST)
        return mlflow.start_run(run_id=existing[0].info.run_id)
    if existing:
        _bad(f"A run named {run!r} already exists in experiment {experiment.name!r}; "
             "pass resume=True to continue it.", RESOURCE_ALREADY_EXISTS)
    return mlflow.start_run(experiment_id=experiment.experiment_id, run_name=run)


def log_params(params: dict[str, float | int | str]) -> None:
    """Log parameters of the current run (Trackio shows them as config keys).

    >>> mytracker.log_params({"learning_rate": 0.01, "optimizer": "adam"})  # doctest: +SKIP
    """
    import mlflow

    _require_run()
    _require_dict("params", params)
    for key, value in params.items():
        if not isinstance(value, (str, numbers.Number)):
            _bad(f"param {key!r} must be a number or a string, got {type(value).__name__}")
    mlflow.log_params(params)


def log_metrics(metrics: dict[str, float | int]) -> None:
    """Log summary metrics of the current run (the latest value per key is the summary).

    >>> mytracker.log_metrics({"accuracy": 0.93})  # doctest: +SKIP
    """
    import mlflow

    _require_run()
    _require_numbers("metrics", metrics)
    mlflow.log_metrics(metrics)


def log_time_series_metrics(
    metrics: dict[str, float | int],
    step: int | None = None,
    wall_time: dt.datetime | float | None = None,
) -> None:
    """Log one point of each metric series; ``step`` defaults to the run's largest step + 1,
    ``wall_time`` (a datetime or POSIX seconds) to now.

    >>> mytracker.log_time_series_metrics({"loss": 0.4}, step=10)  # doctest: +SKIP
    """
    import mlflow

    run_id = _require_run().info.run_id
    _require_numbers("metrics", metrics)
    if step is None:
        step = _largest_step(run_id) + 1
    elif isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        _bad(f"step must be a non-negative integer, got {step!r}")
    if wall_time is None:
        timestamp_ms = None
    elif isinstance(wall_time, dt.datetime):
        timestamp_ms = int(wall_time.timestamp() * 1000)
    elif isinstance(wall_time, numbers.Real) and not isinstance(wall_time, bool) and math.isfinite(wall_time):
        timestamp_ms = int(wall_time * 1000)
    else:
        _bad(f"wall_time must be a datetime or POSIX seconds, got {wall_time!r}")
    mlflow.log_metrics(metrics, step=int(step), timestamp=timestamp_ms)
    _last_step[run_id] = max(_last_step.get(run_id, 0), int(step))


def end_run(state: str = "COMPLETE") -> None:
    """End the current run: ``COMPLETE``/``FINISHED``, ``FAILED``, ``CANCELLED``/``KILLED``.

    >>> mytracker.end_run()  # doctest: +SKIP
    """
    import mlflow

    status = _STATES.get(state, state) if isinstance(state, str) else state
    if status not in _TERMINAL:
        _bad(f"state must be one of {sorted({*_STATES, *_TERMINAL})}, got {state!r}")
    _require_run()
    mlflow.end_run(status)


def get_experiment_df(experiment: str | None = None) -> pd.DataFrame:
    """One row per run of ``experiment`` (default: the ``init`` one), columns ordered as Vertex
    AI orders them: experiment and run name, run id, status, then ``param.*`` (numbers where every
    value of the column is one), ``metric.*`` (latest value), then start and end time.

    >>> mytracker.get_experiment_df("churn")  # doctest: +SKIP
    """
    import mlflow
    import pandas as pd
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    name = experiment if experiment is not None else _require_experiment().name
    client = mlflow.MlflowClient(_read_uri())
    found = client.get_experiment_by_name(name)
    if found is None:
        _bad(f"No experiment named {name!r} in {_read_uri()}.", RESOURCE_DOES_NOT_EXIST)
    rows, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], page_token=token, max_results=1000)
        for run in page:
            info = run.info
            rows.append({
                "experiment_name": name,
                "run_name": info.run_name,
                "run_id": info.run_id,
                "status": info.status,
                "start_time": pd.to_datetime(info.start_time, unit="ms", utc=True),
                "end_time": pd.to_datetime(info.end_time, unit="ms", utc=True),
                **{f"param.{k}": v for k, v in run.data.params.items()},
                **{f"metric.{k}": v for k, v in run.data.metrics.items()},
            })
        token = page.token
        if not token:
            break
    df = pd.DataFrame(rows, columns=None if rows else _RUN_COLUMNS)
    for column in df.columns:
        if column.startswith("param."):
            df[column] = _numbers_if_all_numeric(df[column])
    return df[sorted(df.columns, key=_column_order)]


# Vertex's `get_experiment_df` order: the run's identity, then params, metrics, the rest.
_RUN_COLUMNS = ["experiment_name", "run_name", "run_id", "status", "start_time", "end_time"]


def _column_order(column: str) -> tuple[int, int | str]:
    if column.startswith("param."):
        return (1, column)
    if column.startswith("metric."):
        return (2, column)
    position = _RUN_COLUMNS.index(column)
    return (0 if position < 4 else 3, position)


def _numbers_if_all_numeric(column: pd.Series) -> pd.Series:
    """MLflow keeps params as text; like Vertex, give numbers where every value is one, so
    ``df[df["param.lr"] < 0.05]`` works. Anything else (a word, an empty string) keeps the text."""
    import pandas as pd

    values = column.dropna()
    # pandas reads "" as NaN: an empty param would silently become "missing".
    if values.empty or not all(isinstance(v, str) and v.strip() for v in values):
        return column
    try:
        return pd.to_numeric(column)
    except (ValueError, TypeError):
        return column


# --- helpers ---------------------------------------------------------------------------------


def _read_uri() -> str:
    """The store to read: the current trackio:// URI (as set by ``init``), else Trackio's
    default directory."""
    import mlflow

    from mytracker.store._uri import chosen_store_uri

    return chosen_store_uri(None, mlflow.get_tracking_uri())


def _require_experiment():
    import mlflow

    if _experiment is None:
        _bad("No experiment selected; call mytracker.init(experiment=...) first.")
    if not mlflow.get_tracking_uri().startswith("trackio:"):
        _bad("The MLflow tracking URI no longer points at Trackio; call mytracker.init() again.")
    found = mlflow.get_experiment_by_name(_experiment)
    if found is None:  # deleted or renamed since init(): recreate, as init() would
        return mlflow.set_experiment(_experiment)
    return found


def _require_run():
    import mlflow

    run = mlflow.active_run()
    if run is None:
        _bad("No run is active; call mytracker.start_run(...) first.")
    return run


def _largest_step(run_id: str) -> int:
    """The largest step of any metric of the run; read from the store once per process (so a
    resumed run continues its steps), then kept up to date by this module."""
    if run_id not in _last_step:
        import mlflow

        client = mlflow.MlflowClient()
        keys = client.get_run(run_id).data.metrics
        _last_step[run_id] = max(
            (m.step for key in keys for m in client.get_metric_history(run_id, key)), default=0
        )
    return _last_step[run_id]


def _require_dict(what: str, value: Any) -> None:
    if not isinstance(value, dict):
        _bad(f"{what} must be a dict, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            _bad(f"{what} keys must be strings, got {key!r}")


def _require_numbers(what: str, values: Any) -> None:
    _require_dict(what, values)
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            _bad(f"metric {key!r} must be a number, got {value!r}")


def _bad(message: str, code: int | None = None):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    raise MlflowException(message, code if code is not None else INVALID_PARAMETER_VALUE)
