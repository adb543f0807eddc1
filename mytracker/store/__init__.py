"""The ``trackio://`` MLflow tracking store.

MLflow loads the ``mlflow.tracking_store`` entry points at ``import mlflow``, so this module
imports nothing heavy: the store itself is imported when MLflow first builds one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mytracker.store._store import TrackioStore

__all__ = ["build_registry_store", "build_store", "register"]


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
    from mlflow.tracking._model_registry import utils as registry_utils

    registry_utils._get_store_registry().register(SCHEME, build_registry_store)


def build_registry_store(store_uri: str, tracking_uri: str | None = None):
    """MLflow's model registry for a ``trackio://`` URI (MLflow calls this through the
    ``mlflow.model_registry_store`` entry point): MLflow's own SQL registry store on
    ``<data dir>/mlflow-registry.sqlite``, the file ``mytracker server`` uses too.

    >>> store = build_registry_store("trackio:///tmp/trackio-data")  # doctest: +SKIP
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_STATE
    from mlflow.tracking._model_registry.utils import _get_sqlalchemy_store

    from mytracker.store._db import share_with_group
    from mytracker.store._uri import REGISTRY_FILE, data_dir_from_uri

    data_dir = data_dir_from_uri(store_uri)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MlflowException(
            f"Cannot create the Trackio data directory {data_dir}: {e}", INVALID_STATE
        ) from e
    registry = data_dir / REGISTRY_FILE
    new = not registry.exists()
    store = _get_sqlalchemy_store(f"sqlite:///{registry}")
    if new:
        share_with_group(registry)
    return store
