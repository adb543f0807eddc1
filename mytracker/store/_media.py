"""Make the artifacts MLflow writes visible in Trackio's dashboard (its Files and Media views).

MLflow's artifact repository writes artifact files; the tracking store never sees them. Trackio
0.43's dashboard finds files in two places only, both under its media directory
``<TRACKIO_DIR>/media`` (the only root its ``/file`` endpoint serves besides its logos):

- **Files view** (``get_project_files``): every file under ``media/<project>/files/``, listed
  recursively. So the default artifact location of an experiment is put there
  (:func:`default_artifact_location`): every artifact of every run is listed and downloadable,
  with no copying and no hook.
- **Media view**: a ``metrics`` row whose value is ``{"_type": "trackio.image", "file_path":
  <path relative to media/>, "caption": ...}`` at a step. :func:`publish_run_images` writes one
  such row per image of a finished run (MLflow's ``log_image(key=, step=)`` series keep their key
  and step), copying an image into ``media/`` only when it lives elsewhere (a custom
  ``artifact_location``). It is idempotent: each row carries a fixed ``log_id``.

The store calls both; nothing here imports trackio (its import reads ``TRACKIO_DIR`` once).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mytracker.store._db import iso_from_ms

__all__ = ["default_artifact_location", "publish_run_images", "IMAGE_SUFFIXES"]

# What Trackio's image view renders (Pillow formats browsers display).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})
MEDIA_FOLDER = "media"
FILES_FOLDER = "files"
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


def publish_run_images(
    conn: sqlite3.Connection, project_path: Path, run_id: str, run_name: str, artifact_uri: str
) -> int:
    """Show the images under a run's local artifact directory in Trackio's Media view.

    Call inside the store's write transaction when a run reaches a terminal status. Returns how
    many rows were new. Non-local artifact URIs are skipped (there are no files to show).
    """
    parsed = urlparse(artifact_uri or "")
    if parsed.scheme not in ("file", ""):
        return 0
    root = Path(url2pathname(parsed.path))
    if not root.is_dir():
        return 0
    project_path = Path(project_path)
    media_dir = project_path.parent / MEDIA_FOLDER
    rows = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.endswith(_PREVIEW_SUFFIX):
            continue
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        match = _LOG_IMAGE_NAME.match(relative)
        if match:
            key = match["key"].replace("~", "/")
            step, timestamp_ms = int(match["step"]), int(match["ms"])
        else:
            key, step, timestamp_ms = relative, 0, int(path.stat().st_mtime * 1000)
        try:
            file_path = path.resolve().relative_to(media_dir.resolve())
        except ValueError:  # outside Trackio's media directory: the dashboard cannot serve it
            copy = media_dir / project_path.stem / "mlflow" / run_id / relative
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, copy)
            file_path = copy.relative_to(media_dir)
        value = {"_type": "trackio.image", "file_path": file_path.as_posix(), "caption": relative}
        # Compact JSON: Trackio finds its Media tab by GLOB-matching '"_type":"trackio.image"'.
        text = json.dumps({key: value}, separators=(",", ":"))
        log_id = f"mlflow-artifact:{run_id}:{relative}"
        rows.append((run_id, iso_from_ms(timestamp_ms), run_name, step, text, log_id))
    before = conn.total_changes
    conn.executemany(
        "INSERT OR IGNORE INTO metrics (run_id, timestamp, run_name, step, metrics, log_id) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    return conn.total_changes - before
