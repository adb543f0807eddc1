"""Trackio's on-disk conventions: the schema it reads, project file names, metric keys,
timestamps and numbers as they appear in its rows.

Everything here is a fact about Trackio's storage (0.43, database schema version 2) or about how
mytracker's rows follow it; nothing here opens a file or knows MLflow entities.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson  # a dependency of Trackio's

# Trackio's database layout that mytracker writes: `PRAGMA user_version` 2, written by
# Trackio 0.41 to 0.43 (0.40 and older record no version: 0). A file with another version is
# refused before any write. docs/compatibility.md; pyproject.toml declares the same range.
TRACKIO_SCHEMA_VERSION = 2
SUPPORTED_TRACKIO = "trackio>=0.41,<0.44 (database schema version 2)"

# Trackio 0.43's version-2 tables that mytracker writes, with Trackio's own index names, so that
# Trackio's `CREATE ... IF NOT EXISTS` finds them already in place when it opens the file.
TRACKIO_TABLES = """
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    run_name TEXT NOT NULL,
    step INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    log_id TEXT,
    space_id TEXT
);
CREATE INDEX IF NOT EXISTS idx_metrics_run_step ON metrics(run_id, step);
CREATE INDEX IF NOT EXISTS idx_metrics_run_timestamp ON metrics(run_id, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS idx_metrics_log_id ON metrics(log_id) WHERE log_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_metrics_pending ON metrics(space_id) WHERE space_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_metrics_run_record ON metrics(run_id, run_name, timestamp);
CREATE TABLE IF NOT EXISTS configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    run_name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE(run_id)
);
CREATE INDEX IF NOT EXISTS idx_configs_run_name ON configs(run_name);
CREATE TABLE IF NOT EXISTS system_metrics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    run_name TEXT NOT NULL,
    metrics TEXT NOT NULL,
    log_id TEXT,
    space_id TEXT
);
CREATE INDEX IF NOT EXISTS idx_system_metrics_run_timestamp ON system_metrics(run_id, timestamp);
CREATE UNIQUE INDEX IF NOT EXISTS idx_system_metrics_log_id ON system_metrics(log_id)
    WHERE log_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_system_metrics_pending ON system_metrics(space_id)
    WHERE space_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS project_metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# --- project file names -----------------------------------------------------------------------

# Trackio's reserved on-disk names (see `trackio.sqlite_storage.validate_project_name`).
_RESERVED_SUFFIXES = (
    "_system", "_configs", "_traces", "_artifacts", "_artifact_versions", "_artifact_aliases",
    "_run_artifact_links", "_external_run_artifact_links",
)
_RESERVED_PREFIX = "registry-"
# A file name holds 255 bytes; a project file's draft name adds up to 64 more
# (`.<stem>-NNNN.db.<pid>.<host>.draft-journal`) and a reserved name up to 14.
_MAX_STEM_BYTES = 150


def project_stem(name: str) -> str:
    """Trackio's on-disk identity for a project name: only ``[A-Za-z0-9_-]`` and unicode letters
    and digits survive (so ``../x`` is ``x``), as in ``trackio.utils.canonical_project_name``,
    cut to whole characters that fit in a file name (the name itself is stored exactly)."""
    kept = "".join(c for c in name if c.isalnum() or c in "-_")
    stem = kept.encode()[:_MAX_STEM_BYTES].decode(errors="ignore") or "default"
    if stem.startswith(_RESERVED_PREFIX):
        stem = "mlflow-" + stem
    if stem.endswith(_RESERVED_SUFFIXES):
        stem += "-mlflow"
    return stem


# --- metric keys --------------------------------------------------------------------------------

# Metric keys Trackio reserves in its metrics JSON; Trackio's own `Run.log` escapes them as `__k`.
_TRACKIO_RESERVED_KEYS = frozenset({"project", "run", "timestamp", "step", "time", "metrics"})
# Trackio's system_metrics table has no step column: a row's step is this key of its JSON.
SYSTEM_STEP_KEY = "step"


def trackio_metric_key(key: str) -> str:
    """Escape a metric key the way Trackio does for its reserved names, injectively."""
    if key in _TRACKIO_RESERVED_KEYS or key.startswith("__"):
        return "__" + key
    return key


def mlflow_metric_key(trackio_key: str) -> str:
    return trackio_key[2:] if trackio_key.startswith("__") else trackio_key


def quoted_key(trackio_key: str) -> str:
    """A key as its JSON text in a row (``"loss"``), for building rows and matching them."""
    return json.dumps(trackio_key, ensure_ascii=False)


def metric_table(system: bool) -> tuple[str, str]:
    """(table, SQL expression of a row's step) for Trackio's metric or system-metric rows."""
    if system:
        return "system_metrics", f"json_extract(metrics, '$.{SYSTEM_STEP_KEY}')"
    return "metrics", "step"


# --- timestamps -------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_from_ms(timestamp_ms: int) -> str:
    """Trackio's timestamp text for an MLflow millisecond timestamp, always in one fixed format
    (Trackio orders rows by this string): ``2026-01-02T03:04:05.678000+00:00``."""
    seconds, ms = divmod(timestamp_ms, 1000)
    return _iso_second(seconds) + _MS_SUFFIX[ms]


def iso_texts(timestamps_ms: Iterable[int]) -> list[str]:
    """`iso_from_ms` of many timestamps (inlined: this is on the path of every metric)."""
    second, suffix = _iso_second, _MS_SUFFIX
    return [second(ts // 1000) + suffix[ts % 1000] for ts in timestamps_ms]


_MS_SUFFIX = [f".{ms:03d}000+00:00" for ms in range(1000)]


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def ms_from_iso(text: str) -> int:
    """Milliseconds since the epoch of a Trackio timestamp (fast for the format written here)."""
    if len(text) == 32 and text[19] == "." and text.endswith("000+00:00"):
        return _second_ms(text[:19]) + int(text[20:23])
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(milliseconds=1)


@lru_cache(maxsize=4096)
def _second_ms(text: str) -> int:
    return (datetime.fromisoformat(text + "+00:00") - _EPOCH) // timedelta(milliseconds=1)


# The same conversion in SQL, for rows written in the fixed format above.
MS_SQL = (
    "(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000"
    " + CAST(substr({col}, 21, 3) AS INTEGER))"
)

# --- numbers ----------------------------------------------------------------------------------

# MLflow's SQL store cannot hold infinities: it orders and returns them as the largest doubles.
MAX_DOUBLE = 1.7976931348623157e308


def clamped(value: float) -> float:
    """The value MLflow's SQL store orders by: NaN as 0, infinities as the largest doubles."""
    if value != value:
        return 0.0
    return max(min(value, MAX_DOUBLE), -MAX_DOUBLE)


def finite(value: float) -> float:
    """An infinity as MLflow's SQL store returns it (the largest double); NaN stays NaN."""
    if value in (float("inf"), float("-inf")):
        return MAX_DOUBLE if value > 0 else -MAX_DOUBLE
    return value


def json_numbers(values: Sequence[float]) -> list[str]:
    """Floats as Trackio stores them in JSON, non-finite ones as Trackio's strings ("NaN",
    "Infinity", "-Infinity"), formatted by one orjson call: the hot path of every metric logged.
    orjson writes the shortest text that reads back as the same float, as repr does, though not
    always in repr's notation (``1e-7``, not ``1e-07``)."""
    if not values:
        return []
    texts = orjson.dumps(values).decode()[1:-1].split(",")
    if "null" in texts:  # orjson's text for NaN and the infinities
        for i, text in enumerate(texts):
            if text == "null":
                value = values[i]
                texts[i] = (
                    '"NaN"' if value != value else '"Infinity"' if value > 0 else '"-Infinity"'
                )
    return texts


def number_from_json(value: Any) -> float | None:
    """A metric value from Trackio's JSON, or None for what is not a number (an image, a table)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value)
    return None
