"""mytracker: Trackio as a first-class MLflow tracking backend.

>>> import mytracker
>>> mytracker.autolog()  # doctest: +SKIP

Importing this package is cheap: MLflow loads it through the ``trackio`` store entry point at
``import mlflow``, so the public functions are imported from their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

_HOMES = {
    "autolog": "mytracker._autolog",
    "build_store": "mytracker.store",
    "end_run": "mytracker._sdk",
    "get_experiment_df": "mytracker._sdk",
    "init": "mytracker._sdk",
    "log_metrics": "mytracker._sdk",
    "log_params": "mytracker._sdk",
    "log_time_series_metrics": "mytracker._sdk",
    "start_run": "mytracker._sdk",
}
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


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mytracker' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
