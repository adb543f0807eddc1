"""mytracker: Trackio as a first-class MLflow tracking backend.

>>> import mytracker
>>> mytracker.autolog()  # doctest: +SKIP

Importing this package is cheap: MLflow, Trackio and pandas are imported by the functions that
need them.
"""

from mytracker._autolog import autolog
from mytracker._sdk import (
    end_run,
    get_experiment_df,
    init,
    log_metrics,
    log_params,
    log_time_series_metrics,
    start_run,
)
from mytracker.store import build_store

__all__ = [
    "autolog",
    "build_store",
    "end_run",
    "get_experiment_df",
    "init",
    "log_metrics",
    "log_params",
    "log_time_series_metrics",
    "start_run",
]
__version__ = "0.1.0"
