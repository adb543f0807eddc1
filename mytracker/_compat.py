"""Where supported MLflow versions differ, in one place. docs/compatibility.md has the matrix.

pyproject.toml declares the supported ranges; tests/test_compat.py checks that the private MLflow
names mytracker relies on still exist, so a new MLflow release fails the version matrix in CI
rather than a user's run.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import version


@lru_cache(maxsize=1)
def mlflow_version() -> tuple[int, int]:
    """(major, minor) of the installed MLflow, without importing it."""
    major, minor = version("mlflow").split(".")[:2]
    return int(major), int(minor)


def sql_write_session(store):
    """A write session of MLflow's own ``SqlAlchemyStore``: since MLflow 3.13 its sessions are
    read-only unless asked (``read_only=False``); before, the argument did not exist."""
    if mlflow_version() >= (3, 13):
        return store.ManagedSessionMaker(read_only=False)
    return store.ManagedSessionMaker()
