"""What Trackio's dashboard shows for MLflow's data: a run's config view, and the Files and
Media views for its artifacts.

**Config view.** Trackio shows a run's ``configs`` row. :func:`refresh_config` derives it from
MLflow's state: params as top-level keys (as the dashboard shows configs), MLflow's tags and
state under ``_mlflow_*`` keys, and the parent run's name as ``_Group`` (on the parent too) so
nested runs group with their parent. A deleted run's Trackio name says so.

**Artifacts.** MLflow's artifact repository writes artifact files; the tracking store never sees
them. Trackio 0.43's dashboard finds files in two places only, both under its media directory
``<TRACKIO_DIR>/media`` (the only root its ``/file`` endpoint serves besides its logos):

- **Files view** (``get_project_files``): every file under ``media/<project>/files/``, listed
  recursively. So the default artifact location of an experiment is put there
  (:func:`default_artifact_location`): every artifact of every run is listed and downloadable,
  with no copying and no hook.
- **Media view**: a ``metrics`` row whose value is ``{"_type": "trackio.image", "file_path":
  <path relative to media/>, "caption": ...}`` at a step. :func:`image_rows` makes one such row
  per image of a finished run (MLflow's ``log_image(key=, step=)`` series keep their key and
  step), copying an image into ``media/`` only when it lives elsewhere (a custom
  ``artifact_location``). It is idempotent: each row carries a fixed ``log_id``.

Nothing here imports trackio (its import reads ``TRACKIO_DIR`` once).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow.entities import LifecycleStage
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_USER

from mytracker.store import _db
from mytracker.store._trackio import ORIGIN_TAG, TRACKIO_CONFIG_KEYS, TRACKIO_ORIGIN, iso_from_ms

_logger = logging.getLogger(__name__)
# Set by `mlflow server` for its workers: where `--artifacts-destination` points.
_SERVER_ARTIFACT_DESTINATION = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"

__all__ = [
    "IMAGE_SUFFIXES", "default_artifact_location", "image_rows", "local_artifact_dir",
    "publish_run_images", "refresh_config", "run_artifact_uri", "table_rows",
    "wait_for_artifact_writes",
]


def refresh_config(conn: sqlite3.Connection, run_id: str) -> None:
    """Rewrite the run's Trackio config from its MLflow state, in the caller's transaction."""
    run, params, tags = _db.run_config_sources(conn, run_id)
    name, user_id, status, start_time, stage = run
    # Trackio's "Group by → Group" puts a run with its children: the children carry the parent's
    # name, and so does the parent (a top-level run with children).
    parent_id = tags.get(MLFLOW_PARENT_RUN_ID)
    if parent_id:
        group = _db.run_name(conn, parent_id) or parent_id
        if _db.run_name(conn, parent_id) and _db.config_value(conn, parent_id, "_Group") is None:
            refresh_config(conn, parent_id)  # its first child: group the parent too
    else:
        group = name if _db.any_run_tagged(conn, MLFLOW_PARENT_RUN_ID, run_id) else None
    config = {
        **params,
        "_Username": tags.get(MLFLOW_USER, user_id),
        "_Created": iso_from_ms(start_time or 0),
        "_Group": group,
        "_mlflow_run_id": run_id,
        "_mlflow_status": status,
        "_mlflow_lifecycle_stage": stage,
        "_mlflow_tags": tags,
    }
    if tags.get(ORIGIN_TAG) == TRACKIO_ORIGIN:  # a run Trackio made: keep what it wrote
        _keep_trackio_values(config, _db.run_config(conn, run_id))
    # Trackio lists every run that has rows and has no hidden state: a deleted run stays listed,
    # under a name that says so (a rare, whole-run rewrite of the rows' run_name).
    shown = f"{name} {DELETED_MARK}" if stage == LifecycleStage.DELETED else name
    if _db.trackio_run_name(conn, run_id) not in (None, shown):
        _db.set_trackio_run_name(conn, run_id, shown)
    _db.write_config(conn, run_id, shown, config, start_time or 0)


DELETED_MARK = "(deleted)"


def _keep_trackio_values(config: dict, previous: dict) -> None:
    """Keep the typed values of a Trackio-made run's config (``0.1``, not MLflow's param text
    ``"0.1"``) and the keys Trackio writes itself, so its dashboard shows them as before."""
    for key, value in previous.items():
        if key in TRACKIO_CONFIG_KEYS:
            config[key] = value
        elif key in config and not isinstance(value, str) and str(value) == config[key]:
            config[key] = value


# What Trackio's image view renders (Pillow formats browsers display).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
MEDIA_FOLDER = "media"
FILES_FOLDER = "files"
MODELS_FOLDER = "models"  # an experiment's logged models: models/<model id>/artifacts
# `MlflowClient.log_image(key=, step=)` writes
# images/<key with / as ~>+step+<step>+timestamp+<ms>+<uuid>.png and a "+compressed.webp" preview.
_LOG_IMAGE_NAME = re.compile(
    r"^images/(?P<key>.+)\+step\+(?P<step>-?\d+)\+timestamp\+(?P<ms>\d+)\+[0-9a-fA-F-]+\.png$"
)
_PREVIEW_SUFFIX = "+compressed.webp"


def default_artifact_location(project_path: Path) -> str:
    """The artifact location for a new experiment stored in ``project_path`` (``<dir>/<p>.db``):
    ``<dir>/media/<p>/files/mlflow``, which Trackio's Files view lists for project ``<p>``.

    >>> default_artifact_location(Path("/data/trackio/my-exp.db"))
    'file:///data/trackio/media/my-exp/files/mlflow'
    """
    project_path = Path(project_path)
    files = project_path.parent / MEDIA_FOLDER / project_path.stem / FILES_FOLDER
    return (files / "mlflow").as_uri()


def run_artifact_uri(experiment_location: str, run_id: str, run_name: str) -> str:
    """Where a new run's artifacts go. Under an experiment location inside Trackio's Files view
    (`default_artifact_location`), a folder named after the run, so the Files view lists
    ``mlflow/<run name>/...``: claimed with an atomic mkdir, ``-2``, ``-3`` when the name is
    taken (the folder keeps the name the run had at creation). Elsewhere MLflow's own layout,
    ``<location>/<run id>/artifacts``.
    """
    from mlflow.utils.uri import append_to_uri_path

    mlflow_layout = append_to_uri_path(experiment_location, run_id, "artifacts")
    root = local_artifact_dir(experiment_location)
    if root is None or urlparse(experiment_location).scheme != "file":
        return mlflow_layout
    if root.parent.name != FILES_FOLDER or root.parent.parent.parent.name != MEDIA_FOLDER:
        return mlflow_layout
    name = re.sub(r"[\\/\x00]", "_", run_name).strip() or run_id
    if name in (".", "..", MODELS_FOLDER):  # the experiment's logged models live in models/
        name = f"{name}-run"
    for candidate in [name] + [f"{name}-{n}" for n in range(2, 1000)]:
        try:
            _db.make_shared_dirs(root / candidate)
        except FileExistsError:
            continue
        except OSError:
            return mlflow_layout
        return (root / candidate).as_uri()
    return mlflow_layout


def local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The directory that holds a run's artifacts on this machine: a ``file:`` URI's path, or,
    inside ``mlflow server --artifacts-destination DIR`` (what ``mytracker server`` runs), the
    place under DIR that a proxied ``mlflow-artifacts:/`` URI stands for; None for others.
    """
    parsed = urlparse(artifact_uri or "")
    if parsed.scheme in ("file", ""):
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "mlflow-artifacts":
        destination = urlparse(os.environ.get(_SERVER_ARTIFACT_DESTINATION, ""))
        if destination.path and destination.scheme in ("file", ""):
            return Path(url2pathname(destination.path)) / url2pathname(parsed.path.lstrip("/"))
    return None


def wait_for_artifact_writes(run_id: str) -> None:
    """Wait until this process's MLflow has written the run's queued artifacts: fluent
    ``mlflow.log_image(key=, step=)`` writes its files on a background thread that neither
    ``set_tag`` nor ``end_run`` waits for. (MLflow keeps one artifact repository per run in
    ``_artifact_repos_cache``; a run logged from another process, e.g. through a tracking
    server, has none here.)"""
    try:
        from mlflow.tracking._tracking_service.utils import _artifact_repos_cache

        repository = _artifact_repos_cache.get(run_id)
        if repository is not None:
            repository.flush_async_logging()
    except Exception as error:  # a moved private API must not break logging
        _logger.debug("Could not wait for the artifact writes of run %s: %s", run_id, error)


def image_rows(
    project_path: Path, run_id: str, run_name: str, artifact_uri: str | None,
    only_logged_images: bool = False,
) -> list[tuple]:
    """Metrics rows that show the images under a run's local artifact directory in Trackio's
    Media view, as (run_id, timestamp, run_name, step, metrics JSON, log_id). Reads (and where
    needed copies) files only: call it outside any transaction. Non-local artifact URIs have
    no files to show. `only_logged_images`: look only at ``images/``, where
    ``log_image(key=, step=)`` writes (what a live run needs, without reading all its files).
    """
    root = local_artifact_dir(artifact_uri)
    if only_logged_images and root is not None:
        root_of_paths, root = root, root / "images"
    else:
        root_of_paths = root
    if root is None or not root.is_dir():
        return []
    project_path = Path(project_path)
    media_dir = project_path.parent / MEDIA_FOLDER
    rows = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.endswith(_PREVIEW_SUFFIX):
            continue
        if not path.is_file():
            continue
        relative = path.relative_to(root_of_paths).as_posix()
        match = _LOG_IMAGE_NAME.match(relative)
        if match:
            key = match["key"].replace("~", "/")
            step, timestamp_ms = int(match["step"]), int(match["ms"])
            caption = f"{key} (step {step})"
        else:
            key, step, timestamp_ms = relative, 0, int(path.stat().st_mtime * 1000)
            caption = relative
        try:
            file_path = path.resolve().relative_to(media_dir.resolve())
        except ValueError:  # outside Trackio's media directory: the dashboard cannot serve it
            copy = media_dir / project_path.stem / "mlflow" / run_id / relative
            if not copy.exists():
                _db.make_shared_dirs(copy.parent, exist_ok=True)
                shutil.copy2(path, copy)
                _db.share_with_group(copy)
            file_path = copy.relative_to(media_dir)
        value = {"_type": "trackio.image", "file_path": file_path.as_posix(), "caption": caption}
        # Compact JSON: Trackio finds its Media tab by GLOB-matching '"_type":"trackio.image"'.
        text = json.dumps({key: value}, separators=(",", ":"))
        log_id = f"mlflow-artifact:{run_id}:{relative}"
        rows.append((run_id, iso_from_ms(timestamp_ms), run_name, step, text, log_id))
    return rows


def table_rows(
    run_id: str, run_name: str, artifact_uri: str | None, logged_artifacts: str | None
) -> list[tuple]:
    """Metrics rows that show the run's `mlflow.log_table` tables in Trackio's table view, as
    `image_rows` gives them: each table (JSON or Parquet) the run's `mlflow.loggedArtifacts` tag
    lists, read from its local artifact directory, as Trackio's own `trackio.Table` stores one
    (a list of row dicts) under the artifact's path without its suffix, at step 0. A table that
    grew since (MLflow appends to the file) is shown again, whole; one that cannot be read is
    left out."""
    root = local_artifact_dir(artifact_uri)
    try:
        listed = json.loads(logged_artifacts or "[]")
    except ValueError:
        return []
    rows = []
    for entry in listed if root is not None and isinstance(listed, list) else []:
        path = entry.get("path") if isinstance(entry, dict) else None
        if entry.get("type") != "table" or not isinstance(path, str):
            continue
        name, suffix = posixpath.splitext(path)
        if suffix not in (".json", ".parquet"):
            continue
        try:
            file = root / path
            stat = file.stat()
            data = _table_records(file)
        except (OSError, ValueError, KeyError, TypeError, ImportError):
            continue
        version = f"{path}@{stat.st_mtime_ns}:{stat.st_size}"  # tells a shown table apart
        value = {"_type": "trackio.table", "_value": data, "source": version}
        text = json.dumps({name: value}, separators=(",", ":"))
        log_id = f"mlflow-table:{run_id}:{version}"
        rows.append((run_id, iso_from_ms(stat.st_mtime_ns // 1_000_000), run_name, 0, text, log_id))
    return rows


def _table_records(file: Path) -> list[dict]:
    """A logged table's rows as dicts: JSON as MLflow writes it (pandas' "split" layout), or
    Parquet through pandas, as `mlflow.load_table` reads it."""
    if file.suffix == ".parquet":
        import pandas as pd

        return json.loads(pd.read_parquet(file).to_json(orient="records", date_format="iso"))
    table = json.loads(file.read_text())
    return [dict(zip(table["columns"], values)) for values in table["data"]]


def publish_run_images(
    conn: sqlite3.Connection, project_path: Path, run_id: str, run_name: str, artifact_uri: str
) -> int:
    """Insert a finished run's `image_rows` in the caller's transaction; returns how many rows
    were new (each row has a fixed log_id, so publishing twice adds nothing)."""
    return _db.insert_media_rows(conn, image_rows(project_path, run_id, run_name, artifact_uri))
