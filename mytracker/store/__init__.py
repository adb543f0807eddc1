"""The ``trackio://`` MLflow tracking store.

MLflow loads the ``mlflow.tracking_store`` entry points at ``import mlflow``, so this module
imports nothing heavy: the store itself is imported when MLflow first builds one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mytracker.store._store import TrackioStore

__all__ = ["build_store", "register"]


def build_store(store_uri: str, artifact_uri: str | None = None) -> TrackioStore:
    """Build the store for a ``trackio://`` URI (MLflow calls this through the entry point).

    >>> store = build_store("trackio:///tmp/trackio-data")  # doctest: +SKIP
    """
    from mytracker.store._store import TrackioStore

    return TrackioStore(store_uri, artifact_uri)


def register() -> None:
    """Register the ``trackio`` scheme with MLflow in this process. Installed packages get it
    from the entry point; this also works from a source checkout.

    >>> register()  # doctest: +SKIP
    """
    from mlflow.tracking._tracking_service import utils

    from mytracker.store._uri import SCHEME

    utils._tracking_store_registry.register(SCHEME, build_store)
