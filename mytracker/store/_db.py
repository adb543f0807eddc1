"""The one place that speaks SQL to Trackio project databases.

A Trackio project is ``<data dir>/<project>.db``. Trackio's own tables (``metrics``, ``configs``,
``system_metrics``) get the rows its dashboard reads; MLflow's extra state (run status and times,
lifecycle, exact params and tags, latest metrics, datasets) lives in ``mlflow_*`` tables in the
same file and is written in the same transaction, so copying the file moves the whole experiment.

Nothing here knows MLflow entities: values go in and come out as plain Python types.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote
from typing import Any

import orjson  # a dependency of Trackio's

# Trackio's database layout that this module writes: `PRAGMA user_version` 2, written by
# Trackio 0.41 to 0.43 (0.40 and older record no version: 0). A file with another version is
# refused before any write. docs/compatibility.md; pyproject.toml declares the same range.
TRACKIO_SCHEMA_VERSION = 2
SUPPORTED_TRACKIO = "trackio>=0.41,<0.44 (database schema version 2)"

# How long a writer waits for another process's write lock before giving up with a clear error.
LOCK_TIMEOUT_S = float(os.environ.get("MYTRACKER_LOCK_TIMEOUT", "60"))

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_DOUBLE = 1.7976931348623157e308
# Metric keys Trackio reserves in its metrics JSON; Trackio's own `Run.log` escapes them as `__k`.
_TRACKIO_RESERVED_KEYS = frozenset({"project", "run", "timestamp", "step", "time", "metrics"})


class DatabaseError(Exception):
    """A project database cannot be used; the message names the file and what to do."""


# Rows per INSERT statement, largest first. A statement with many VALUES rows opens the table
# and its indexes once, where executemany opens them once per row: for Trackio's metrics table,
# with three indexes, that halves the cost of a row, and the larger the statement the less each
# row costs. MLflow sends at most 1,000 metrics per batch. SQLite allows 32,766 parameters per
# statement since 3.32, 999 before. The few statement shapes stay in the connection's cache.
# OR ROLLBACK: a failing row ends the whole transaction, as `ProjectDB.write` would anyway, so
# SQLite keeps no statement journal to undo just this statement (~15% of the insert's cost).
_VALUES_ROWS = (1000, 100, 10, 1) if sqlite3.sqlite_version_info >= (3, 32) else (300, 100, 10, 1)


@lru_cache(maxsize=32)
def _values_sql(table: str, shared: int, width: int, rows: int) -> str:
    """``INSERT OR ROLLBACK INTO table VALUES (?1, ?2, ?3..), ...``: `shared` parameters
    common to every row, then `width` parameters of each row."""
    common = ", ".join(f"?{i}" for i in range(1, shared + 1))
    groups = []
    for row in range(rows):
        first = shared + 1 + row * width
        groups.append(f"({common}, " + ", ".join(f"?{first + i}" for i in range(width)) + ")")
    return f"INSERT OR ROLLBACK INTO {table} VALUES " + ", ".join(groups)


def _insert_values(
    conn: sqlite3.Connection, table: str, shared: tuple, width: int, values: list
) -> None:
    """Insert ``len(values) // width`` rows, each the `shared` values followed by its own
    `width` values from the flat list `values`, in as few statements as `_VALUES_ROWS` allows."""
    start, end = 0, len(values)
    for rows in _VALUES_ROWS:
        step = rows * width
        while end - start >= step:
            sql = _values_sql(table, len(shared), width, rows)
            conn.execute(sql, (*shared, *values[start : start + step]))
            start += step


# --- Trackio's storage conventions -------------------------------------------------------------


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
_MS_SQL = (
    "(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000"
    " + CAST(substr({col}, 21, 3) AS INTEGER))"
)


def trackio_metric_key(key: str) -> str:
    """Escape a metric key the way Trackio does for its reserved names, injectively."""
    if key in _TRACKIO_RESERVED_KEYS or key.startswith("__"):
        return "__" + key
    return key


def mlflow_metric_key(trackio_key: str) -> str:
    return trackio_key[2:] if trackio_key.startswith("__") else trackio_key


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


# --- schema -------------------------------------------------------------------------------------

# Trackio 0.43's version-2 tables that mytracker writes, with Trackio's own index names, so that
# Trackio's `CREATE ... IF NOT EXISTS` finds them already in place when it opens the file.
_TRACKIO_TABLES = """
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

# mytracker's own tables, as named migrations recorded inside the same file (applied once each,
# in order, idempotently). Never edit a migration that has shipped: add a new one.
_MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_mlflow_tables",
        """
        CREATE TABLE mlflow_experiment (
            experiment_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            artifact_location TEXT,
            lifecycle_stage TEXT NOT NULL,
            creation_time INTEGER,
            last_update_time INTEGER
        );
        CREATE TABLE mlflow_experiment_tags (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE mlflow_runs (
            run_id TEXT PRIMARY KEY,
            name TEXT,
            user_id TEXT,
            status TEXT NOT NULL,
            start_time INTEGER,
            end_time INTEGER,
            lifecycle_stage TEXT NOT NULL,
            artifact_uri TEXT,
            deleted_time INTEGER
        );
        CREATE INDEX mlflow_runs_start ON mlflow_runs(start_time DESC, run_id);
        CREATE TABLE mlflow_params (
            run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX mlflow_params_key ON mlflow_params(key, value);
        CREATE TABLE mlflow_tags (
            run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX mlflow_tags_key ON mlflow_tags(key, value);
        CREATE TABLE mlflow_latest_metrics (
            run_id TEXT NOT NULL, key TEXT NOT NULL,
            value REAL, timestamp INTEGER NOT NULL, step INTEGER NOT NULL, is_nan INTEGER NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX mlflow_latest_metrics_key ON mlflow_latest_metrics(key, value);
        CREATE TABLE mlflow_datasets (
            dataset_uuid TEXT PRIMARY KEY,
            name TEXT NOT NULL, digest TEXT NOT NULL,
            source_type TEXT, source TEXT, schema TEXT, profile TEXT,
            UNIQUE (name, digest)
        );
        CREATE TABLE mlflow_inputs (
            input_uuid TEXT PRIMARY KEY,
            dataset_uuid TEXT NOT NULL, run_id TEXT NOT NULL, position INTEGER NOT NULL,
            UNIQUE (run_id, dataset_uuid)
        );
        CREATE TABLE mlflow_input_tags (
            input_uuid TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (input_uuid, name)
        );
        CREATE TABLE mlflow_outputs (
            run_id TEXT NOT NULL, model_id TEXT NOT NULL, step INTEGER NOT NULL,
            PRIMARY KEY (run_id, model_id)
        );
        CREATE TABLE mlflow_trace_links (
            run_id TEXT NOT NULL, trace_id TEXT NOT NULL, PRIMARY KEY (run_id, trace_id)
        );
        """,
    ),
    (
        "0002_run_owners",
        # The process that created a run, so runs left RUNNING by a killed process can be found.
        """
        CREATE TABLE mlflow_run_owners (
            run_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
            process_start REAL
        );
        """,
    ),
]


def _configure(conn: sqlite3.Connection) -> None:
    # For files created here (no effect on existing ones): with 8 KiB pages rather than 4 KiB,
    # a batch of metric rows splits fewer index pages, ~10% faster to write.
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # MLflow's SQLite store makes LIKE case-sensitive (ILIKE is the insensitive one).
    conn.execute("PRAGMA case_sensitive_like = true")


def _is_locked(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error)
    )


# --- one project file -----------------------------------------------------------------------


class ProjectDB:
    """One open Trackio project database, safe to share between threads of one process.

    Every statement runs inside ``read()`` or ``write()``; ``write()`` is one ``BEGIN IMMEDIATE``
    transaction, so a failure anywhere leaves the file as it was.
    """

    def __init__(self, path: Path, *, create: bool = False):
        self.path = path
        self._lock = threading.RLock()
        if not create and not path.exists():
            raise FileNotFoundError(path)
        # In a read-only directory SQLite cannot make the WAL index files it needs to read a WAL
        # database; there the file is opened immutable, so reading works and writing says why not.
        self.read_only = path.exists() and not os.access(path.parent, os.W_OK)
        target = f"file:{quote(str(path))}?immutable=1" if self.read_only else str(path)
        try:
            self.conn = sqlite3.connect(
                target, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False,
                uri=self.read_only,
            )
        except sqlite3.Error as e:
            raise DatabaseError(f"Cannot open Trackio database {path}: {e}") from e
        try:
            self._prepare(create)
        except BaseException:
            self.conn.close()
            raise

    def _prepare(self, create: bool) -> None:
        try:
            if not self.read_only:
                _configure(self.conn)
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as e:
            if shutil.disk_usage(self.path.parent).free < 1 << 20:
                raise DatabaseError(
                    f"Cannot open Trackio database {self.path} ({e}): the disk is full; free disk "
                    "space (nothing was written)."
                ) from e
            raise DatabaseError(
                f"{self.path} is not a usable SQLite database ({e}). It may be truncated or "
                "not a Trackio project at all: move it out of the data directory, or restore it "
                "from a copy."
            ) from e
        if version == 0 and not tables:
            if not create:
                raise DatabaseError(f"{self.path} is an empty database, not a Trackio project.")
        elif version != TRACKIO_SCHEMA_VERSION:
            hint = (
                "open it once with that Trackio version (for example `trackio show`) to migrate it"
                if version < TRACKIO_SCHEMA_VERSION
                else "upgrade mytracker to a version that supports it"
            )
            raise DatabaseError(
                f"{self.path} has Trackio database schema version {version}; mytracker supports "
                f"{SUPPORTED_TRACKIO}: {hint}. Nothing was written to it."
            )
        self.adopted = "mlflow_experiment" in tables
        if self.adopted:
            applied = {row[0] for row in self.conn.execute("SELECT name FROM mytracker_migrations")}
            if any(name not in applied for name, _ in _MIGRATIONS) and not self.read_only:
                self.ensure_schema()

    def _is_adopted(self) -> bool:
        """Whether the file holds an MLflow experiment (another process may have just made it)."""
        if not self.adopted:
            with self._lock:
                self.adopted = (
                    self.conn.execute(
                        "SELECT 1 FROM sqlite_master WHERE name = 'mlflow_experiment'"
                    ).fetchone()
                    is not None
                )
        return self.adopted

    def ensure_schema(self) -> None:
        """Create Trackio's tables (if new) and apply mytracker's pending migrations."""
        with self.write() as conn:
            for statement in _split_sql(_TRACKIO_TABLES):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {TRACKIO_SCHEMA_VERSION}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS mytracker_migrations "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM mytracker_migrations")}
            for name, script in _MIGRATIONS:
                if name in done:
                    continue
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO mytracker_migrations VALUES (?, ?)",
                    (name, datetime.now(timezone.utc).isoformat()),
                )

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._lock, self._errors_named():
            if self.conn.in_transaction:  # inside this thread's write(): read what it sees
                yield self.conn
                return
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of the block is written, or none of it."""
        with self._lock, self._errors_named():
            self._begin_immediate()
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _errors_named(self) -> Iterator[None]:
        """SQLite's errors as DatabaseError naming the file and what to do."""
        try:
            yield
        except sqlite3.Error as e:
            text = str(e)
            if "full" in text:
                advice = "free disk space (nothing of this call was written)"
            elif "readonly" in text or "read-only" in text or "unable to open" in text:
                advice = "make the data directory and its files writable"
            elif "malformed" in text or "not a database" in text:
                advice = "restore the file from a copy or move it out of the data directory"
            else:
                advice = "nothing of this call was written"
            raise DatabaseError(f"Trackio database {self.path}: {text}; {advice}.") from e

    def _begin_immediate(self) -> None:
        # SQLite's busy handler already waits up to LOCK_TIMEOUT_S; a few retries cover the
        # rare immediate SQLITE_BUSY that bypasses it (e.g. during a WAL recovery).
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        delay = 0.01
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if not _is_locked(e):
                    raise
                if time.monotonic() > deadline:
                    raise DatabaseError(
                        f"{self.path} stayed locked by another writer for "
                        f"{LOCK_TIMEOUT_S:.0f} s ({e}). Another process is holding a write "
                        "transaction open; retry, or stop that process."
                    ) from e
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # --- experiment -------------------------------------------------------------------------

    def experiment(self) -> dict | None:
        if not self._is_adopted():
            return None
        with self.read() as conn:
            row = conn.execute(
                "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, "
                "last_update_time FROM mlflow_experiment"
            ).fetchone()
            if row is None:
                return None
            tags = dict(conn.execute("SELECT key, value FROM mlflow_experiment_tags"))
        keys = ("experiment_id", "name", "artifact_location", "lifecycle_stage")
        return {
            **dict(zip(keys, row[:4])),
            "creation_time": row[4],
            "last_update_time": row[5],
            "tags": tags,
        }

    def create_experiment(
        self, experiment_id: str, name: str, artifact_location: str, now_ms: int, tags: dict
    ) -> None:
        self.ensure_schema()
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM mlflow_experiment").fetchone():
                raise DatabaseError(f"{self.path} already holds an experiment.")
            conn.execute(
                "INSERT INTO mlflow_experiment VALUES (?, ?, ?, 'active', ?, ?)",
                (experiment_id, name, artifact_location, now_ms, now_ms),
            )
            conn.executemany("INSERT INTO mlflow_experiment_tags VALUES (?, ?)", tags.items())
            conn.execute(
                "INSERT OR REPLACE INTO project_metadata VALUES ('mlflow_experiment_name', ?)",
                (name,),
            )
        self.adopted = True

    def update_experiment(self, conn: sqlite3.Connection, **fields: Any) -> None:
        assignments = ", ".join(f"{column} = ?" for column in fields)
        conn.execute(f"UPDATE mlflow_experiment SET {assignments}", tuple(fields.values()))
        if "name" in fields:
            conn.execute(
                "INSERT OR REPLACE INTO project_metadata VALUES ('mlflow_experiment_name', ?)",
                (fields["name"],),
            )

    def set_runs_lifecycle(self, conn: sqlite3.Connection, stage: str, deleted_time) -> None:
        conn.execute(
            "UPDATE mlflow_runs SET lifecycle_stage = ?, deleted_time = ?", (stage, deleted_time)
        )

    # --- runs -------------------------------------------------------------------------------

    def has_run(self, run_id: str) -> bool:
        if not self._is_adopted():
            return False
        with self.read() as conn:
            return (
                conn.execute("SELECT 1 FROM mlflow_runs WHERE run_id = ?", (run_id,)).fetchone()
                is not None
            )

    @staticmethod
    def run_state(conn: sqlite3.Connection, run_id: str) -> tuple | None:
        """(lifecycle_stage, name, status, end_time) of a run, or None."""
        return conn.execute(
            "SELECT lifecycle_stage, name, status, end_time FROM mlflow_runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()

    @staticmethod
    def insert_run(
        conn: sqlite3.Connection, run: dict, tags: Iterable[tuple[str, str]], owner: tuple | None
    ) -> None:
        conn.execute(
            "INSERT INTO mlflow_runs (run_id, name, user_id, status, start_time, end_time, "
            "lifecycle_stage, artifact_uri, deleted_time) "
            "VALUES (:run_id, :name, :user_id, :status, :start_time, NULL, 'active', "
            ":artifact_uri, NULL)",
            run,
        )
        conn.executemany(
            "INSERT OR REPLACE INTO mlflow_tags VALUES (?, ?, ?)",
            [(run["run_id"], key, value) for key, value in tags],
        )
        if owner is not None:
            conn.execute("INSERT INTO mlflow_run_owners VALUES (?, ?, ?, ?)", (run["run_id"], *owner))
        # An empty metrics row makes the run appear in Trackio's dashboard at once.
        conn.execute(
            "INSERT INTO metrics (run_id, timestamp, run_name, step, metrics) "
            "VALUES (?, ?, ?, 0, '{}')",
            (run["run_id"], iso_from_ms(run["start_time"] or 0), run["name"]),
        )

    @staticmethod
    def update_run(conn: sqlite3.Connection, run_id: str, **fields: Any) -> None:
        assignments = ", ".join(f"{column} = ?" for column in fields)
        conn.execute(
            f"UPDATE mlflow_runs SET {assignments} WHERE run_id = ?", (*fields.values(), run_id)
        )
        if "name" in fields:
            for table in ("metrics", "configs", "system_metrics"):
                conn.execute(
                    f"UPDATE {table} SET run_name = ? WHERE run_id = ?", (fields["name"], run_id)
                )

    @staticmethod
    def set_tags(conn: sqlite3.Connection, run_id: str, tags: Iterable[tuple[str, str]]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO mlflow_tags VALUES (?, ?, ?)",
            [(run_id, key, value) for key, value in tags],
        )

    @staticmethod
    def delete_tag(conn: sqlite3.Connection, run_id: str, key: str) -> bool:
        cursor = conn.execute("DELETE FROM mlflow_tags WHERE run_id = ? AND key = ?", (run_id, key))
        return cursor.rowcount > 0

    @staticmethod
    def params(conn: sqlite3.Connection, run_id: str, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            found.update(
                conn.execute(
                    f"SELECT key, value FROM mlflow_params WHERE run_id = ? AND key IN ({marks})",
                    (run_id, *chunk),
                )
            )
        return found

    @staticmethod
    def insert_params(conn: sqlite3.Connection, run_id: str, params: Iterable[tuple[str, str]]):
        conn.executemany(
            "INSERT INTO mlflow_params VALUES (?, ?, ?)",
            [(run_id, key, value) for key, value in params],
        )

    def running_runs(self) -> list[tuple]:
        """(run_id, host, pid, process_start, last metric timestamp_ms) of RUNNING runs."""
        with self.read() as conn:
            return conn.execute(
                "SELECT r.run_id, o.host, o.pid, o.process_start, "
                f"(SELECT max({_MS_SQL.format(col='m.timestamp')}) FROM metrics m "
                "WHERE m.run_id = r.run_id) "
                "FROM mlflow_runs r LEFT JOIN mlflow_run_owners o ON o.run_id = r.run_id "
                "WHERE r.status = 'RUNNING' AND r.lifecycle_stage = 'active'"
            ).fetchall()

    # --- metrics ----------------------------------------------------------------------------

    @staticmethod
    def existing_points(
        conn: sqlite3.Connection, table: str, run_id: str, first_ms: int, last_ms: int
    ) -> list[tuple[int, int, int, str]]:
        """(row id, step, timestamp_ms, metrics JSON) of a run's rows within a time window."""
        step = "step" if table == "metrics" else "json_extract(metrics, '$.step')"
        rows = conn.execute(
            f"SELECT id, {step}, timestamp, metrics FROM {table} "
            "WHERE run_id = ? AND timestamp BETWEEN ? AND ?",
            (run_id, iso_from_ms(first_ms), iso_from_ms(last_ms)),
        ).fetchall()
        return [(row_id, step_value, ms_from_iso(text), data) for row_id, step_value, text, data in rows]

    @staticmethod
    def update_rows(conn: sqlite3.Connection, table: str, rows: list[tuple[int, str]]) -> None:
        """Replace the metrics JSON of rows given as (row id, metrics JSON)."""
        conn.executemany(
            f"UPDATE {table} SET metrics = ? WHERE id = ?", [(text, row_id) for row_id, text in rows]
        )

    @staticmethod
    def insert_metric_rows(
        conn: sqlite3.Connection, run_id: str, run_name: str, rows: list
    ) -> None:
        """Insert Trackio metric rows given as one flat list: timestamp_ms, step, metrics JSON,
        then the next row's three."""
        values = rows.copy()
        values[0::3] = iso_texts(rows[0::3])
        table = "metrics (run_id, run_name, timestamp, step, metrics)"
        _insert_values(conn, table, (run_id, run_name), 3, values)

    @staticmethod
    def insert_system_rows(
        conn: sqlite3.Connection, run_id: str, run_name: str, rows: list
    ) -> None:
        """Insert Trackio system-metric rows, given as `insert_metric_rows` takes them; the JSON
        carries the MLflow step as "step", since Trackio's system table has no column."""
        values = [None] * (len(rows) // 3 * 2)
        values[0::2] = iso_texts(rows[0::3])
        values[1::2] = rows[2::3]
        table = "system_metrics (run_id, run_name, timestamp, metrics)"
        _insert_values(conn, table, (run_id, run_name), 2, values)

    @staticmethod
    def upsert_latest_metrics(
        conn: sqlite3.Connection, run_id: str, latest: Iterable[tuple[str, float | None, int, int, int]]
    ) -> None:
        """Keep, per key, the point MLflow calls latest: the largest (step, timestamp, value),
        comparing NaN as 0 and infinities as the largest finite doubles, as MLflow's SQL store."""
        def rank(table: str) -> str:
            value = f"min(max(coalesce({table}.value, 0), {-_MAX_DOUBLE!r}), {_MAX_DOUBLE!r})"
            return f"({table}.step, {table}.timestamp, {value})"

        conn.executemany(
            "INSERT INTO mlflow_latest_metrics (run_id, key, value, timestamp, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
            "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
            f"is_nan = excluded.is_nan WHERE {rank('excluded')} > {rank('mlflow_latest_metrics')}",
            [(run_id, *point) for point in latest],
        )

    def metric_history(
        self,
        run_id: str,
        trackio_key: str,
        system: bool,
        start: tuple[int, int] | None = None,
        limit: int | None = None,
        only: tuple[int, int] | None = None,
    ) -> tuple[list[tuple[int, int, Any]], int]:
        """(step, timestamp_ms, raw value) of one key's points in (timestamp, step) order, from
        `start` on, at most `limit` rows, or only those at `only`; and how many rows were read
        (rows are matched by text first, then checked, so the count can exceed the points)."""
        quoted = json.dumps(trackio_key, ensure_ascii=False)
        table, step = (
            ("system_metrics", "json_extract(metrics, '$.step')") if system else ("metrics", "step")
        )
        where, args = "run_id = ? AND instr(metrics, ?) > 0", [run_id, quoted + ":"]
        if start is not None:
            where += f" AND (timestamp, {step}) >= (?, ?)"
            args += [iso_from_ms(start[0]), start[1]]
        if only is not None:
            where += f" AND timestamp = ? AND {step} = ?"
            args += [iso_from_ms(only[0]), only[1]]
        sql = (
            f"SELECT {step}, timestamp, metrics FROM {table} "
            f"WHERE {where} ORDER BY timestamp, {step}, id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.read() as conn:
            rows = conn.execute(sql, args).fetchall()
        points = []
        for step_value, timestamp, text in rows:
            data = orjson.loads(text)
            value = number_from_json(data.get(trackio_key))
            if value is not None:
                points.append((step_value, ms_from_iso(timestamp), value))
        return points, len(rows)

    # --- configs (what Trackio's dashboard shows for a run) --------------------------------

    @staticmethod
    def run_config_sources(conn: sqlite3.Connection, run_id: str) -> tuple:
        """(run row, params, tags) from which a run's Trackio config is derived."""
        run = conn.execute(
            "SELECT name, user_id, status, start_time, lifecycle_stage FROM mlflow_runs "
            "WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        params = dict(
            conn.execute("SELECT key, value FROM mlflow_params WHERE run_id = ?", (run_id,))
        )
        tags = dict(conn.execute("SELECT key, value FROM mlflow_tags WHERE run_id = ?", (run_id,)))
        return run, params, tags

    @staticmethod
    def run_name(conn: sqlite3.Connection, run_id: str) -> str | None:
        row = conn.execute("SELECT name FROM mlflow_runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def write_config(
        conn: sqlite3.Connection, run_id: str, run_name: str, config: dict, created_ms: int
    ) -> None:
        conn.execute(
            "INSERT INTO configs (run_id, run_name, config, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET run_name = excluded.run_name, "
            "config = excluded.config",
            (run_id, run_name, json.dumps(config, ensure_ascii=False), iso_from_ms(created_ms)),
        )

    # --- datasets, outputs, traces ---------------------------------------------------------

    @staticmethod
    def log_inputs(conn: sqlite3.Connection, run_id: str, dataset_inputs: list[tuple]) -> None:
        """dataset_inputs: (dataset fields dict, [(tag name, value)]) per input, deduplicated."""
        import uuid

        position = conn.execute(
            "SELECT coalesce(max(position) + 1, 0) FROM mlflow_inputs WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        for dataset, tags in dataset_inputs:
            row = conn.execute(
                "SELECT dataset_uuid FROM mlflow_datasets WHERE name = ? AND digest = ?",
                (dataset["name"], dataset["digest"]),
            ).fetchone()
            if row is None:
                dataset_uuid = uuid.uuid4().hex
                conn.execute(
                    "INSERT INTO mlflow_datasets VALUES "
                    "(:uuid, :name, :digest, :source_type, :source, :schema, :profile)",
                    {**dataset, "uuid": dataset_uuid},
                )
            else:
                dataset_uuid = row[0]
            if conn.execute(
                "SELECT 1 FROM mlflow_inputs WHERE run_id = ? AND dataset_uuid = ?",
                (run_id, dataset_uuid),
            ).fetchone():
                continue
            input_uuid = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO mlflow_inputs VALUES (?, ?, ?, ?)",
                (input_uuid, dataset_uuid, run_id, position),
            )
            position += 1
            conn.executemany(
                "INSERT OR REPLACE INTO mlflow_input_tags VALUES (?, ?, ?, ?)",
                [(input_uuid, name, value, i) for i, (name, value) in enumerate(tags)],
            )

    @staticmethod
    def log_outputs(conn: sqlite3.Connection, run_id: str, outputs: list[tuple[str, int]]):
        conn.executemany(
            "INSERT OR REPLACE INTO mlflow_outputs VALUES (?, ?, ?)",
            [(run_id, model_id, step) for model_id, step in outputs],
        )

    @staticmethod
    def link_traces(conn: sqlite3.Connection, run_id: str, trace_ids: list[str]) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO mlflow_trace_links VALUES (?, ?)",
            [(run_id, trace_id) for trace_id in trace_ids],
        )

    # --- reading whole runs -------------------------------------------------------------------

    def load_runs(self, run_ids: Sequence[str]) -> dict[str, dict]:
        """Everything MLflow's Run entity needs, for many runs at once."""
        runs: dict[str, dict] = {}
        with self.read() as conn:
            for chunk in _chunks(list(run_ids), 500):
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(
                    "SELECT run_id, name, user_id, status, start_time, end_time, "
                    f"lifecycle_stage, artifact_uri FROM mlflow_runs WHERE run_id IN ({marks})",
                    chunk,
                ):
                    runs[row[0]] = {
                        "info": row,
                        "params": {},
                        "tags": {},
                        "metrics": [],
                        "inputs": {},
                        "outputs": [],
                    }
                for table, field in (("mlflow_params", "params"), ("mlflow_tags", "tags")):
                    for run_id, key, value in conn.execute(
                        f"SELECT run_id, key, value FROM {table} WHERE run_id IN ({marks})", chunk
                    ):
                        runs[run_id][field][key] = value
                for run_id, *metric in conn.execute(
                    "SELECT run_id, key, value, timestamp, step, is_nan FROM mlflow_latest_metrics "
                    f"WHERE run_id IN ({marks})",
                    chunk,
                ):
                    runs[run_id]["metrics"].append(metric)
                for row in conn.execute(
                    "SELECT i.run_id, i.input_uuid, d.name, d.digest, d.source_type, d.source, "
                    "d.schema, d.profile FROM mlflow_inputs i JOIN mlflow_datasets d "
                    f"ON d.dataset_uuid = i.dataset_uuid WHERE i.run_id IN ({marks}) "
                    "ORDER BY i.run_id, i.position",
                    chunk,
                ):
                    runs[row[0]]["inputs"][row[1]] = {"dataset": row[2:], "tags": []}
                for run_id, input_uuid, name, value in conn.execute(
                    "SELECT i.run_id, t.input_uuid, t.name, t.value FROM mlflow_input_tags t "
                    "JOIN mlflow_inputs i ON i.input_uuid = t.input_uuid "
                    f"WHERE i.run_id IN ({marks}) ORDER BY t.position",
                    chunk,
                ):
                    runs[run_id]["inputs"][input_uuid]["tags"].append((name, value))
                for run_id, model_id, step in conn.execute(
                    f"SELECT run_id, model_id, step FROM mlflow_outputs WHERE run_id IN ({marks})",
                    chunk,
                ):
                    runs[run_id]["outputs"].append((model_id, step))
        return runs

    # --- search ---------------------------------------------------------------------------------

    def search_runs(
        self, stages: Sequence[str], clauses: Sequence[tuple], order_by: Sequence[tuple]
    ) -> list[tuple]:
        """Runs matching every clause: (run_id, start_time, case_1, value_1, ...) per run.

        clauses: (kind, key, comparator, value) with kind one of "attribute", "run_name",
        "metric", "param", "tag", "dataset", "dataset_context".
        order_by: (kind, key) with kind one of "attribute", "metric", "param", "tag"; per order
        key the row carries a null-rank (0 value, 1 NaN, 2 missing, as MLflow's SQL store sorts)
        and the value.
        """
        if not self._is_adopted():
            return []
        where = [f"r.lifecycle_stage IN ({','.join('?' * len(stages))})"]
        args: list[Any] = list(stages)
        for kind, key, comparator, value in clauses:
            sql, clause_args = _filter_sql(kind, key, comparator, value)
            where.append(sql)
            args.extend(clause_args)
        columns, joins, join_args = ["r.run_id", "r.start_time"], [], []
        for i, (kind, key) in enumerate(order_by):
            if kind == "attribute":
                columns += [f"CASE WHEN r.{key} IS NULL THEN 2 ELSE 0 END", f"r.{key}"]
                continue
            table = {"metric": "mlflow_latest_metrics", "param": "mlflow_params", "tag": "mlflow_tags"}[kind]
            joins.append(f"LEFT JOIN {table} o{i} ON o{i}.run_id = r.run_id AND o{i}.key = ?")
            join_args.append(key)
            nan_rank = f"WHEN o{i}.is_nan THEN 1 " if kind == "metric" else ""
            columns += [
                f"CASE {nan_rank}WHEN o{i}.run_id IS NULL OR o{i}.value IS NULL THEN 2 ELSE 0 END",
                f"o{i}.value",
            ]
        sql = (
            f"SELECT {', '.join(columns)} FROM mlflow_runs r {' '.join(joins)} "
            f"WHERE {' AND '.join(where)}"
        )
        with self.read() as conn:
            return conn.execute(sql, (*join_args, *args)).fetchall()


def _filter_sql(kind: str, key: str, comparator: str, value: Any) -> tuple[str, list]:
    """One search clause as SQL over `mlflow_runs r`, with MLflow's SQL-store semantics."""
    def compare(column: str) -> tuple[str, list]:
        if comparator in ("IN", "NOT IN"):
            values = list(value)
            return f"{column} {comparator} ({','.join('?' * len(values))})", values
        if comparator == "ILIKE":
            return f"lower({column}) LIKE lower(?)", [value]
        if comparator not in ("=", "!=", "<", "<=", ">", ">=", "LIKE"):
            raise ValueError(f"unsupported comparator {comparator!r}")
        return f"{column} {comparator} ?", [value]

    if kind == "attribute":
        return compare(f"r.{key}")
    if kind == "run_name":
        sql, args = compare("t.value")
        return (
            "EXISTS (SELECT 1 FROM mlflow_tags t WHERE t.run_id = r.run_id "
            f"AND t.key = 'mlflow.runName' AND {sql})",
            args,
        )
    if kind == "dataset":
        sql, args = compare(f"d.{key}")
        return (
            "EXISTS (SELECT 1 FROM mlflow_inputs i JOIN mlflow_datasets d "
            f"ON d.dataset_uuid = i.dataset_uuid WHERE i.run_id = r.run_id AND {sql})",
            args,
        )
    if kind == "dataset_context":
        sql, args = compare("t.value")
        return (
            "EXISTS (SELECT 1 FROM mlflow_inputs i JOIN mlflow_input_tags t "
            "ON t.input_uuid = i.input_uuid WHERE i.run_id = r.run_id "
            f"AND t.name = 'mlflow.data.context' AND {sql})",
            args,
        )
    table = {"metric": "mlflow_latest_metrics", "param": "mlflow_params", "tag": "mlflow_tags"}[kind]
    if comparator in ("IS NULL", "IS NOT NULL"):
        negate = "NOT " if comparator == "IS NULL" else ""
        return (
            f"{negate}EXISTS (SELECT 1 FROM {table} e WHERE e.run_id = r.run_id AND e.key = ?)",
            [key],
        )
    sql, args = compare("e.value")
    if kind == "metric":
        # NaN is never equal, less or greater than anything, and always "!=".
        sql = f"({sql} OR e.is_nan)" if comparator == "!=" else f"({sql} AND NOT e.is_nan)"
    return (
        f"EXISTS (SELECT 1 FROM {table} e WHERE e.run_id = r.run_id AND e.key = ? AND {sql})",
        [key, *args],
    )


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
