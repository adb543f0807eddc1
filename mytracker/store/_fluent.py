"""What MLflow's fluent API costs per call on ``trackio://``, outside the store.

A training step through ``mlflow.log_metrics`` is MLflow's own work plus the store's step. Two
pieces of MLflow's part do nothing for a ``trackio://`` user and are cut here, each leaving
MLflow's answer unchanged: the Spark-session lookup behind every registry URI it resolves, and
the two ``MlflowClient`` objects it builds for every call. Both are installed when a
``trackio://`` store is built (``TrackioStore.__init__``) and are checked by name against each
supported MLflow in ``tests/test_compat.py`` (docs/compatibility.md lists the names).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

from mytracker.store._uri import SCHEME


def install() -> None:
    _skip_spark_lookup_without_pyspark()
    _reuse_fluent_clients()


def _skip_spark_lookup_without_pyspark() -> None:
    """Stop MLflow from trying ``import pyspark`` on every client it builds.

    Each ``MlflowClient()`` (``mlflow.log_metrics`` builds two) resolves the registry URI, and
    with none set MLflow first asks for an active Spark session, which starts with
    ``from pyspark.sql import SparkSession``: without pyspark installed that is a failed import
    scanning ``sys.path``, about 200 us a time. A Spark session can only be active once pyspark
    has been imported in this process, so until then the answer is None without the import;
    afterwards MLflow's own lookup runs unchanged. Setting a registry URI instead would also
    skip it, but would outlive a later ``set_tracking_uri`` and leak into child processes.
    """
    from mlflow.tracking._model_registry import utils as registry_utils

    lookup = registry_utils._get_active_spark_session
    if getattr(lookup, "__wrapped__", None) is not None:
        return

    @functools.wraps(lookup)
    def active_spark_session():
        return lookup() if "pyspark" in sys.modules else None

    registry_utils._get_active_spark_session = active_spark_session


def _reuse_fluent_clients() -> None:
    """Let MLflow's fluent API reuse one ``MlflowClient`` on ``trackio://``.

    Every fluent call builds a new client (``mlflow.log_metrics`` two: ~14 us each in a training
    loop, a tenth of a step): it resolves the tracking, registry and workspace URIs and builds a
    tracking and a tracing client over the store MLflow caches per URI. A client built with no
    arguments depends on nothing but those URIs, and they on the settings compared here (the
    URIs set in this process, their environment variables, and a Spark session, which only
    exists once pyspark is imported). While those are as they were, the client built last is the
    one MLflow would build. Resolving the URIs themselves to compare them would cost half of what
    is saved, so the settings are compared instead; ``tests/test_compat.py`` checks that MLflow's
    resolution reads nothing else. Only the name ``mlflow.tracking.fluent`` calls is replaced:
    ``MlflowClient`` itself, calls with arguments and every other tracking URI are MLflow's own.
    """
    from mlflow.environment_variables import MLFLOW_REGISTRY_URI, MLFLOW_WORKSPACE_STORE_URI
    from mlflow.tracking import client as client_module
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from mlflow.utils import workspace_utils

    build = client_module.MlflowClient
    if fluent.MlflowClient is not build:
        return  # ours already (or someone else's: left alone)
    environ = os.environ
    last: tuple[tuple, Any] = ((), None)

    @functools.wraps(build, updated=())
    def reused_client(*args, **kwargs):
        nonlocal last
        tracking_uri = tracking_utils._resolve_tracking_uri(None)
        if args or kwargs or not tracking_uri.startswith(f"{SCHEME}:") or "pyspark" in sys.modules:
            return build(*args, **kwargs)
        settings = (
            tracking_uri,
            registry_utils._registry_uri,
            environ.get(MLFLOW_REGISTRY_URI.name),
            workspace_utils._workspace_store_uri,
            environ.get(MLFLOW_WORKSPACE_STORE_URI.name),
        )
        built_for, client = last
        if built_for != settings:
            client = build()
            last = (settings, client)
        return client

    fluent.MlflowClient = reused_client
