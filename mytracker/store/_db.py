"""The connection to one Trackio project file, and the SQL that reads and writes it.

A Trackio project is ``<data dir>/<project>.db``. Trackio's own tables (``metrics``, ``configs``,
``system_metrics``) get the rows its dashboard reads; MLflow's extra state (run status and times,
lifecycle, exact params and tags, latest metrics, datasets) lives in ``mlflow_*`` tables in the
same file (see ``_migrations``) and is written in the same transaction, so copying the file moves
the whole experiment.

``ProjectDB`` owns the connection: transactions, lock waits and SQLite's errors named for a
person. The module's functions take an open transaction's connection and do one query each.
Nothing here knows MLflow entities: rows come out as the typed tuples below.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from mytracker.store import _migrations
from mytracker.store._trackio import (
    MAX_DOUBLE,
    MS_SQL,
    SUPPORTED_TRACKIO,
    TRACKIO_SCHEMA_VERSION,
    iso_from_ms,
    iso_texts,
    metric_table,
    ms_from_iso,
)

# How long a writer waits for another process's write lock before giving up with a clear error.
LOCK_TIMEOUT_S = float(os.environ.get("MYTRACKER_LOCK_TIMEOUT", "60"))


class DatabaseError(Exception):
    """A project database cannot be used; the message names the file and what to do."""


# --- files in the shared data directory ----------------------------------------------------------


def share_with_group(path: Path | str) -> None:
    """Give the group of a group-writable directory (a data directory several OS users share,
    see docs/deployment.md) the same access to a file or folder mytracker has just made in it
    as its maker has, whatever the maker's umask: else one user's lock file, project file or
    run folder shuts the others out. Elsewhere, and for what another user made, nothing."""
    try:
        parent = os.stat(os.path.dirname(os.path.abspath(path)))
        made = os.stat(path)
    except OSError:
        return
    if not parent.st_mode & stat.S_IWGRP or made.st_uid != os.geteuid():
        return
    mode = stat.S_IMODE(made.st_mode) | stat.S_IRGRP | stat.S_IWGRP
    if stat.S_ISDIR(made.st_mode):
        mode |= stat.S_IXGRP
    if mode != stat.S_IMODE(made.st_mode):
        with suppress(OSError):
            os.chmod(path, mode)


def make_shared_dirs(path: Path, exist_ok: bool = False) -> None:
    """`path.mkdir(parents=True)`, each folder made given to the group as `share_with_group`
    says. FileExistsError if `path` exists, unless `exist_ok`."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    if not missing and not exist_ok:
        raise FileExistsError(path)
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if folder == missing[0] and not exist_ok:
                raise
            continue
        share_with_group(folder)


@contextmanager
def file_lock(path: Path, cannot: Callable[[OSError], Exception]) -> Iterator[None]:
    """Hold an exclusive lock on `path` (made if missing, shared with the directory's group).
    The file is opened read-only, which is enough to lock, so one another OS user made serves
    too; if it cannot be opened at all, `cannot(error)` is raised."""
    try:
        try:
            handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o666))
            share_with_group(path)
        except FileExistsError:
            handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT, 0o666))
    except OSError as e:
        raise cannot(e) from e
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the rows that cross into the store -------------------------------------------------------


class ExperimentRow(NamedTuple):
    experiment_id: str
    name: str
    artifact_location: str | None
    lifecycle_stage: str
    creation_time: int | None
    last_update_time: int | None
    tags: dict[str, str]
    native: bool = False  # a Trackio project mytracker did not make (see `_native`): not adopted


class RunState(NamedTuple):
    """What a write to a run checks first."""

    lifecycle_stage: str
    name: str
    status: str
    end_time: int | None


class RunRow(NamedTuple):
    run_id: str
    name: str
    user_id: str | None
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None


class LatestMetric(NamedTuple):
    key: str
    value: float | None  # None for NaN
    timestamp: int
    step: int
    is_nan: int


class DatasetInputRow(NamedTuple):
    dataset: tuple  # (name, digest, source_type, source, schema, profile)
    tags: list[tuple[str, str]]


@dataclass
class RunRecord:
    """Everything MLflow's Run entity holds, as stored."""

    info: RunRow
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[LatestMetric] = field(default_factory=list)
    inputs: list[DatasetInputRow] = field(default_factory=list)
    outputs: list[tuple[str, int]] = field(default_factory=list)  # (model_id, step)


class SearchRow(NamedTuple):
    """A run that matched a search, with one (null rank, value) per order key: the rank is 0
    for a value, 1 for NaN, 2 for missing, as MLflow's SQL store sorts them."""

    run_id: str
    start_time: int | None
    order_keys: tuple[tuple[int, Any], ...]


class TrackioRun(NamedTuple):
    """What Trackio's own tables record of a run: its configs row (if any) and the timestamp
    texts of its first and last metric and system-metric rows (None where it has none)."""

    run_id: str
    run_name: str | None
    config: str | None  # the JSON text
    created_at: str | None
    first_row: str | None
    last_row: str | None


class StoredPoint(NamedTuple):
    """A Trackio metric row as the metric writer reads it back."""

    row_id: int
    step: int
    timestamp_ms: int
    text: str  # the row's metrics JSON


_RUN_COLUMNS = "run_id, name, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri"


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


def _configure(conn: sqlite3.Connection) -> None:
    # For files created here (no effect on existing ones): with 8 KiB pages rather than 4 KiB,
    # a batch of metric rows splits fewer index pages, ~10% faster to write.
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    # The checkpointer thread copies the WAL back; a commit checkpoints inline only as a backstop.
    conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_CHECKPOINT_PAGES}")
    # MLflow's SQLite store makes LIKE case-sensitive (ILIKE is the insensitive one).
    conn.execute("PRAGMA case_sensitive_like = true")


# SQLite's automatic checkpoint copies the WAL back into the database file inside the commit that
# crosses 1,000 pages: 20-50 ms, once every ~110 steps of a training loop, on the caller's thread.
# Here a thread of the process's own does it instead, from a connection of its own, a moment after
# a file was written; writers never wait for it (PASSIVE). If that thread falls far behind, the
# commit that crosses the backstop still checkpoints, as SQLite always would.
CHECKPOINT_DELAY_S = 0.2
BACKSTOP_CHECKPOINT_PAGES = 8000


class _Checkpointer:
    """Checkpoints the project files this process wrote, from a daemon thread."""

    def __init__(self) -> None:
        self._written: set[Path] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def written(self, path: Path) -> None:
        """Note a commit to `path`: it is checkpointed within about CHECKPOINT_DELAY_S."""
        if self._wake.is_set() and path in self._written:  # due already, after this commit
            return
        with self._lock:
            self._written.add(path)
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(
                    target=self._run, name="mytracker-checkpointer", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(CHECKPOINT_DELAY_S)  # let a burst of commits gather
            self._wake.clear()
            with self._lock:
                paths, self._written = self._written, set()
            for path in paths:
                checkpoint(path)


def checkpoint(path: Path) -> None:
    """Copy `path`'s WAL back into the file without waiting for anyone (PASSIVE): frames that
    a reader still needs stay for the next time. A file gone or locked is left alone."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=0)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass  # busy or gone: the next commit notes the file again
    finally:
        conn.close()


_CHECKPOINTER = _Checkpointer()


def _is_locked(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error)
    )


# --- one project file -----------------------------------------------------------------------


def _file_key(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` (device and inode), or None if none is."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


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
        # Immutable ignores the WAL, though: while a writer (e.g. another user) has the file open,
        # its -wal and -shm exist and a read-only connection reads the WAL through them.
        self.read_only = path.exists() and not os.access(path.parent, os.W_OK)
        self._closed = False
        self.conn = self._connect()
        try:
            self._prepare(create)
        except BaseException:
            self.conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        target = str(self.path)
        if self.read_only:
            in_use = all(Path(f"{self.path}{suffix}").exists() for suffix in ("-wal", "-shm"))
            target = f"file:{quote(str(self.path))}?{'mode=ro' if in_use else 'immutable=1'}"
        try:
            conn = sqlite3.connect(
                target, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False,
                uri=self.read_only,
            )
        except sqlite3.Error as e:
            raise DatabaseError(f"Cannot open Trackio database {self.path}: {e}") from e
        self._file = _file_key(self.path)
        return conn

    def is_current(self) -> bool:
        """Whether the file at the path is still the one this connection has open (not deleted,
        or replaced by a new file of the same name, since)."""
        return self._file is not None and _file_key(self.path) == self._file

    def _prepare(self, create: bool) -> None:
        # Inspect before writing: switching to WAL rewrites the file's header, so a file that
        # is refused (MLflow's own database, another schema, an empty file) is only read.
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as e:
            raise self._unusable(e) from e
        if version == 0 and not tables:
            if not create:
                raise DatabaseError(
                    f"{self.path} is an empty database, not a Trackio project. Nothing was "
                    "written to it."
                )
        elif {"alembic_version", "experiments"} & tables:
            raise DatabaseError(
                f"{self.path} is MLflow's own SQLite database, not a Trackio project: keep it "
                "outside the Trackio data directory (`mytracker import sqlite:///<file>` copies "
                "its history in). Nothing was written to it."
            )
        elif version != TRACKIO_SCHEMA_VERSION:
            hint = (
                "open it once with that Trackio version (for example `trackio show`) to migrate it"
                if version < TRACKIO_SCHEMA_VERSION and "metrics" in tables
                else "upgrade mytracker to a version that supports it"
                if version > TRACKIO_SCHEMA_VERSION
                else "it is not a Trackio project: move it out of the data directory"
            )
            raise DatabaseError(
                f"{self.path} has Trackio database schema version {version}; mytracker supports "
                f"{SUPPORTED_TRACKIO}: {hint}. Nothing was written to it."
            )
        if not self.read_only:  # ours, or being created
            try:
                _configure(self.conn)
            except sqlite3.DatabaseError as e:
                raise self._unusable(e) from e
        self.adopted = "mlflow_experiment" in tables
        if self.adopted and not self.read_only and _migrations.pending(self.conn):
            self.ensure_schema()

    def _unusable(self, e: sqlite3.DatabaseError) -> DatabaseError:
        if shutil.disk_usage(self.path.parent).free < 1 << 20:
            return DatabaseError(
                f"Cannot open Trackio database {self.path} ({e}): the disk is full; free disk "
                "space (nothing was written)."
            )
        return DatabaseError(
            f"{self.path} is not a usable SQLite database ({e}). It may be truncated or "
            "not a Trackio project at all: move it out of the data directory, or restore it "
            "from a copy."
        )

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
            _migrations.apply(conn)

    def close(self) -> None:
        with self._lock:
            self.conn.close()
            self._closed = True

    def release(self) -> bool:
        """Close the connection unless a thread is using it (then it closes with the last
        reference); a later use opens it again. Returns whether it closed now."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self.close()
            return True
        finally:
            self._lock.release()

    def _reopen_if_closed(self) -> None:
        if self._closed:
            self.conn = self._connect()
            if not self.read_only:
                _configure(self.conn)
            self._closed = False

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._lock, self._errors_named():
            self._reopen_if_closed()
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
        with self._lock:
            try:  # `_errors_named`, inlined: this is the path of every logged step
                self._reopen_if_closed()
                self._begin_immediate()
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise self._named_error(e) from e
            _CHECKPOINTER.written(self.path)

    @contextmanager
    def _errors_named(self) -> Iterator[None]:
        """SQLite's errors as DatabaseError naming the file and what to do."""
        try:
            yield
        except sqlite3.Error as e:
            raise self._named_error(e) from e

    def _named_error(self, e: sqlite3.Error) -> DatabaseError:
        text = str(e)
        if "full" in text:
            advice = "free disk space (nothing of this call was written)"
        elif "readonly" in text or "read-only" in text or "unable to open" in text:
            advice = "make the data directory and its files writable"
        elif "malformed" in text or "not a database" in text:
            advice = "restore the file from a copy or move it out of the data directory"
        else:
            advice = "nothing of this call was written"
        return DatabaseError(f"Trackio database {self.path}: {text}; {advice}.")

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

    # --- reads that open their own snapshot ---------------------------------------------------

    def experiment(self) -> ExperimentRow | None:
        if not self._is_adopted():
            return None
        with self.read() as conn:
            return experiment_row(conn)

    def has_run(self, run_id: str) -> bool:
        if not self._is_adopted():
            return False
        with self.read() as conn:
            return (
                conn.execute("SELECT 1 FROM mlflow_runs WHERE run_id = ?", (run_id,)).fetchone()
                is not None
            )

    def has_logged_model(self, model_id: str) -> bool:
        if not self._is_adopted():
            return False
        with self.read() as conn:
            return has_logged_models_table(conn) and logged_model_row(conn, model_id) is not None

    def entity_ids(self) -> list[str]:
        """Every run id and logged-model id in the file, and the ids of the runs in Trackio's
        tables that MLflow did not make."""
        if not self._is_adopted():
            with self.read() as conn:
                return trackio_run_ids(conn) if is_trackio_project(conn) else []
        with self.read() as conn:
            ids = [row[0] for row in conn.execute("SELECT run_id FROM mlflow_runs")]
            ids += trackio_run_ids(conn)
            if has_logged_models_table(conn):
                ids += [row[0] for row in conn.execute("SELECT model_id FROM mlflow_logged_models")]
        return ids

    def running_runs(self) -> list[tuple]:
        """(run_id, host, pid, process_start, last metric timestamp_ms) of RUNNING runs."""
        if not self._is_adopted():
            return []
        with self.read() as conn:
            return conn.execute(
                "SELECT r.run_id, o.host, o.pid, o.process_start, "
                f"(SELECT max({MS_SQL.format(col='m.timestamp')}) FROM metrics m "
                "WHERE m.run_id = r.run_id) "
                "FROM mlflow_runs r LEFT JOIN mlflow_run_owners o ON o.run_id = r.run_id "
                "WHERE r.status = 'RUNNING' AND r.lifecycle_stage = 'active'"
            ).fetchall()

    def metric_rows(
        self,
        run_id: str,
        quoted_key: str,
        system: bool,
        start: tuple[int, int] | None = None,
        limit: int | None = None,
        only: tuple[int, int] | None = None,
    ) -> list[tuple[int, str, str]]:
        """(step, timestamp text, metrics JSON) of the rows whose JSON holds `quoted_key`, in
        (timestamp, step) order, from `start` (timestamp_ms, step) on, at most `limit` rows, or
        only those at `only`. Rows are matched by text: the caller checks the key is there."""
        table, step = metric_table(system)
        where, args = "", []
        if start is not None:
            # Trackio's own rows carry microseconds: those of the start's millisecond sort after
            # its text whatever their step, so within that millisecond the step decides.
            where += f" AND (timestamp, {step}) >= (?, ?) AND (timestamp >= ? OR {step} >= ?)"
            args += [iso_from_ms(start[0]), start[1], iso_from_ms(start[0] + 1), start[1]]
        if only is not None:
            # A range: Trackio's own rows carry microseconds, a point's timestamp only ms.
            where += f" AND timestamp >= ? AND timestamp < ? AND {step} = ?"
            args += [iso_from_ms(only[0]), iso_from_ms(only[0] + 1), only[1]]
        sql = (
            f"SELECT {step}, timestamp, metrics FROM {table} "
            f"WHERE run_id = ? AND instr(metrics, ?) > 0{where} ORDER BY timestamp, {step}, id"
        )
        limit_sql = "" if limit is None else f" LIMIT {int(limit)}"
        with self.read() as conn:
            if system or not _has_joined_points(conn, run_id, quoted_key):
                return conn.execute(sql + limit_sql, [run_id, quoted_key + ":", *args]).fetchall()
            # Points that joined a row stamped earlier are read at their own time instead: those
            # first, then the rows' other points up to the last of them (when there are `limit`:
            # nothing later makes the page), so a page reads what its span holds.
            joined = conn.execute(
                "SELECT step, timestamp, metrics, row_id FROM mlflow_joined_points "
                f"WHERE run_id = ? AND key = ?{where} "
                "AND EXISTS (SELECT 1 FROM metrics WHERE id = row_id) "  # Trackio may delete rows
                "ORDER BY timestamp, step, row_id" + limit_sql,
                [run_id, quoted_key, *args],
            ).fetchall()
            if limit is not None and len(joined) >= limit:
                where += " AND timestamp <= ?"
                args.append(joined[-1][1])
            rows = conn.execute(
                "SELECT step, timestamp, metrics, id FROM metrics "
                f"WHERE run_id = ? AND instr(metrics, ?) > 0{where} AND NOT EXISTS "
                "(SELECT 1 FROM mlflow_joined_points j WHERE j.row_id = metrics.id AND j.key = ?) "
                "ORDER BY timestamp, step, id" + limit_sql,
                [run_id, quoted_key + ":", *args, quoted_key],
            ).fetchall()
            rows = sorted(rows + joined, key=lambda row: (row[1], row[0], row[3]))
            return [row[:3] for row in rows[:limit]]

    def load_runs(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        """Everything MLflow's Run entity needs, for many runs at once."""
        runs: dict[str, RunRecord] = {}
        with self.read() as conn:
            for chunk in _chunks(list(run_ids), 500):
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(
                    f"SELECT {_RUN_COLUMNS} FROM mlflow_runs WHERE run_id IN ({marks})", chunk
                ):
                    runs[row[0]] = RunRecord(RunRow(*row))
                for table, attribute in (("mlflow_params", "params"), ("mlflow_tags", "tags")):
                    for run_id, key, value in conn.execute(
                        f"SELECT run_id, key, value FROM {table} WHERE run_id IN ({marks})", chunk
                    ):
                        getattr(runs[run_id], attribute)[key] = value
                latest = (
                    "SELECT run_id, key, value, timestamp, step, is_nan FROM mlflow_latest_metrics "
                    f"WHERE run_id IN ({marks})"
                )
                try:  # in the order the keys were first logged, as MLflow's SQL store lists them
                    rows = conn.execute(latest + " ORDER BY logged, key", chunk).fetchall()
                except sqlite3.OperationalError as e:  # a file from before 0007, not upgraded
                    if "no such column" not in str(e):
                        raise
                    rows = conn.execute(latest, chunk).fetchall()
                for run_id, *metric in rows:
                    runs[run_id].metrics.append(LatestMetric(*metric))
                inputs: dict[str, DatasetInputRow] = {}
                for row in conn.execute(
                    "SELECT i.run_id, i.input_uuid, d.name, d.digest, d.source_type, d.source, "
                    "d.schema, d.profile FROM mlflow_inputs i JOIN mlflow_datasets d "
                    f"ON d.dataset_uuid = i.dataset_uuid WHERE i.run_id IN ({marks}) "
                    "ORDER BY i.run_id, i.position",
                    chunk,
                ):
                    inputs[row[1]] = DatasetInputRow(row[2:], [])
                    runs[row[0]].inputs.append(inputs[row[1]])
                for input_uuid, name, value in conn.execute(
                    "SELECT t.input_uuid, t.name, t.value FROM mlflow_input_tags t "
                    "JOIN mlflow_inputs i ON i.input_uuid = t.input_uuid "
                    f"WHERE i.run_id IN ({marks}) ORDER BY t.position",
                    chunk,
                ):
                    inputs[input_uuid].tags.append((name, value))
                for run_id, model_id, step in conn.execute(
                    f"SELECT run_id, model_id, step FROM mlflow_outputs WHERE run_id IN ({marks})",
                    chunk,
                ):
                    runs[run_id].outputs.append((model_id, step))
        return runs

    def search_runs(
        self, stages: Sequence[str], clauses: Sequence[tuple], order_by: Sequence[tuple]
    ) -> list[SearchRow]:
        """Runs matching every clause.

        clauses: (kind, key, comparator, value) with kind one of "attribute", "run_name",
        "metric", "param", "tag", "dataset", "dataset_context".
        order_by: (kind, key) with kind one of "attribute", "metric", "param", "tag".
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
            rows = conn.execute(sql, (*join_args, *args)).fetchall()
        return [SearchRow(row[0], row[1], tuple(zip(row[2::2], row[3::2]))) for row in rows]

    # --- writes that open their own transaction ---------------------------------------------

    def create_experiment(
        self, experiment_id: str, name: str, artifact_location: str, now_ms: int, tags: dict
    ) -> None:
        self.ensure_schema()
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM mlflow_experiment").fetchone():
                raise DatabaseError(f"{self.path} already holds an experiment.")
            _insert_experiment(conn, experiment_id, name, artifact_location, now_ms, tags)
        self.adopted = True


# --- a new project file -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _empty_project_image() -> bytes:
    """The bytes of an empty project file exactly as `ProjectDB(path, create=True)` and
    `ensure_schema` make it (8 KiB pages, WAL, Trackio's schema and user_version, every
    migration), made that way once per process in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="mytracker-template-") as tmp:
        path = Path(tmp) / "template.db"
        db = ProjectDB(path, create=True)
        try:
            db.ensure_schema()
        finally:
            db.close()  # the last connection: the WAL is checkpointed into the file and removed
        return path.read_bytes()


# Bytes 18 and 19 of a SQLite file are its read/write format versions: 2 in WAL mode, 1 in the
# rollback-journal mode an in-memory database needs (https://www.sqlite.org/fileformat.html).
_FORMAT_VERSIONS = slice(18, 20)


class _Template:
    """The empty project image in memory, its schema parsed once per process: a new file's
    rows are added, the bytes taken, and the rows removed again."""

    def __init__(self):
        self.lock = threading.Lock()
        image = bytearray(_empty_project_image())
        image[_FORMAT_VERSIONS] = b"\x01\x01"
        self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.conn.deserialize(bytes(image))

    def image(self, experiment_id: str, name: str, location: str, now_ms: int, tags: dict) -> bytes:
        with self.lock:
            conn = self.conn
            conn.execute("BEGIN")
            try:
                _insert_experiment(conn, experiment_id, name, location, now_ms, tags)
                _migrations.stamp_applied_now(conn)
                conn.execute("COMMIT")
                image = bytearray(conn.serialize())
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute("DELETE FROM mlflow_experiment")
                conn.execute("DELETE FROM mlflow_experiment_tags")
                conn.execute("DELETE FROM project_metadata WHERE key = 'mlflow_experiment_name'")
        image[_FORMAT_VERSIONS] = b"\x02\x02"
        return bytes(image)


@lru_cache(maxsize=1)
def _template(pid: int) -> _Template:
    """This process's template (a forked child makes its own)."""
    return _Template()


def write_new_project(
    path: Path, experiment_id: str, name: str, artifact_location: str, now_ms: int, tags: dict
) -> None:
    """Write a complete project file holding a new experiment to `path`, which must not exist
    (a draft no reader lists: the caller places it). The file is the empty project image with
    the experiment's rows added in memory (`_Template`), written and fsynced in one go: about
    1.5 ms, 0.85 ms of it the fsync, where making the schema statement by statement on disk took
    about 8 ms.

    >>> write_new_project(Path("/data/.exp.db.draft"), "1", "exp", "/data/exp", 0, {})  # doctest: +SKIP
    """
    image = _template(os.getpid()).image(experiment_id, name, artifact_location, now_ms, tags)
    # Whole on disk before the caller places it: a crash leaves at most an unplaced draft.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(image)
        os.fsync(fd)
    finally:
        os.close(fd)


# --- experiment (inside a transaction) ----------------------------------------------------------


def experiment_row(conn: sqlite3.Connection) -> ExperimentRow | None:
    row = conn.execute(
        "SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, "
        "last_update_time FROM mlflow_experiment"
    ).fetchone()
    if row is None:
        return None
    tags = dict(conn.execute("SELECT key, value FROM mlflow_experiment_tags"))
    return ExperimentRow(*row, tags)


def adopt_experiment(conn: sqlite3.Connection, experiment: ExperimentRow, now_ms: int) -> bool:
    """Make a Trackio project's file hold `experiment` (mytracker's tables, then its row),
    unless another process just did; returns whether this call did."""
    _migrations.apply(conn)
    if conn.execute("SELECT 1 FROM mlflow_experiment").fetchone():
        return False
    conn.execute(
        "INSERT INTO mlflow_experiment VALUES (?, ?, ?, ?, ?, ?)",
        (
            experiment.experiment_id, experiment.name, experiment.artifact_location,
            experiment.lifecycle_stage, experiment.creation_time, now_ms,
        ),
    )
    conn.executemany("INSERT INTO mlflow_experiment_tags VALUES (?, ?)", experiment.tags.items())
    _set_experiment_name_metadata(conn, experiment.name)
    return True


def update_experiment(conn: sqlite3.Connection, **fields: Any) -> None:
    assignments = ", ".join(f"{column} = ?" for column in fields)
    conn.execute(f"UPDATE mlflow_experiment SET {assignments}", tuple(fields.values()))
    if "name" in fields:
        _set_experiment_name_metadata(conn, fields["name"])


def _insert_experiment(
    conn: sqlite3.Connection, experiment_id: str, name: str, artifact_location: str, now_ms: int,
    tags: dict,
) -> None:
    conn.execute(
        "INSERT INTO mlflow_experiment VALUES (?, ?, ?, 'active', ?, ?)",
        (experiment_id, name, artifact_location, now_ms, now_ms),
    )
    conn.executemany("INSERT INTO mlflow_experiment_tags VALUES (?, ?)", tags.items())
    _set_experiment_name_metadata(conn, name)


def _set_experiment_name_metadata(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO project_metadata VALUES ('mlflow_experiment_name', ?)", (name,)
    )


def set_experiment_tag(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO mlflow_experiment_tags VALUES (?, ?)", (key, value))


def delete_experiment_tag(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("DELETE FROM mlflow_experiment_tags WHERE key = ?", (key,)).rowcount > 0


def set_runs_lifecycle(conn: sqlite3.Connection, stage: str, deleted_time: int | None) -> None:
    conn.execute(
        "UPDATE mlflow_runs SET lifecycle_stage = ?, deleted_time = ?", (stage, deleted_time)
    )


# --- runs (inside a transaction) ----------------------------------------------------------------


def run_state(conn: sqlite3.Connection, run_id: str) -> RunState | None:
    row = conn.execute(
        "SELECT lifecycle_stage, name, status, end_time FROM mlflow_runs WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return None if row is None else RunState(*row)


def run_row(conn: sqlite3.Connection, run_id: str) -> RunRow:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM mlflow_runs WHERE run_id = ?", (run_id,))
    return RunRow(*row.fetchone())


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
    set_tags(conn, run["run_id"], tags)
    if owner is not None:
        conn.execute("INSERT INTO mlflow_run_owners VALUES (?, ?, ?, ?)", (run["run_id"], *owner))
    # An empty metrics row makes the run appear in Trackio's dashboard at once; the run's first
    # real row replaces it (`drop_placeholder`), so Trackio's step count is the real one.
    conn.execute(
        "INSERT INTO metrics (run_id, timestamp, run_name, step, metrics, log_id) "
        "VALUES (?, ?, ?, 0, '{}', ?)",
        (run["run_id"], iso_from_ms(run["start_time"] or 0), run["name"],
         _placeholder_log_id(run["run_id"])),
    )


def _placeholder_log_id(run_id: str) -> str:
    return f"mlflow-placeholder:{run_id}"


def drop_placeholder(conn: sqlite3.Connection, run_id: str) -> None:
    """Remove the run's empty metrics row, in the transaction that adds its first real one
    (one lookup in Trackio's unique log_id index, whatever the run holds). A placeholder that
    took the batch's points (same step and timestamp: `_metrics` fills open rows) stays."""
    conn.execute(
        "DELETE FROM metrics WHERE log_id = ? AND metrics = '{}'", (_placeholder_log_id(run_id),)
    )


def record_run(conn: sqlite3.Connection, record: RunRecord) -> None:
    """Give a run that Trackio made its MLflow rows (no Trackio rows are written: it has them)."""
    conn.execute(
        f"INSERT INTO mlflow_runs ({_RUN_COLUMNS}) VALUES ({','.join('?' * 8)})", record.info
    )
    insert_params(conn, record.info.run_id, record.params.items())
    set_tags(conn, record.info.run_id, record.tags.items())
    logged = first_logged(m.key for m in record.metrics)
    upsert_latest_metrics(
        conn, record.info.run_id,
        [(m.key, m.value, m.timestamp, m.step, m.is_nan, logged[m.key]) for m in record.metrics],
    )


def update_run(conn: sqlite3.Connection, run_id: str, **fields: Any) -> None:
    """Change a run's MLflow row. A new name reaches its Trackio config here; its metric rows
    follow with `rename_run_rows`, after the transaction."""
    assignments = ", ".join(f"{column} = ?" for column in fields)
    conn.execute(
        f"UPDATE mlflow_runs SET {assignments} WHERE run_id = ?", (*fields.values(), run_id)
    )
    if "name" in fields:
        conn.execute("UPDATE configs SET run_name = ? WHERE run_id = ?", (fields["name"], run_id))


RENAME_ROWS_PER_TRANSACTION = 10_000


def rename_run_rows(db: ProjectDB, run_id: str, name: str) -> None:
    """Give a run's Trackio metric rows the run's new name, a few thousand rows a transaction,
    pausing a quarter of the time each took, so another writer of the file waits for one
    chunk at most. Rows still under an older name are found through Trackio's (run_id,
    run_name) index, so each chunk costs its own rows. Stops if the run is renamed again
    meanwhile: that rename finishes the job."""
    stale_rows = (
        ("metrics", "run_name < ?2"),  # two ranges of the index, not one `!=` scan
        ("metrics", "run_name > ?2"),
        ("system_metrics", "run_name != ?2"),  # few rows, and no run_name index
    )
    for table, stale in stale_rows:
        while True:
            started = time.monotonic()
            with db.write() as conn:
                if run_name(conn, run_id) != name:
                    return
                changed = conn.execute(
                    f"UPDATE {table} SET run_name = ?2 WHERE id IN (SELECT id FROM {table} "
                    f"WHERE run_id = ?1 AND {stale} LIMIT {RENAME_ROWS_PER_TRANSACTION})",
                    (run_id, name),
                ).rowcount
            if changed < RENAME_ROWS_PER_TRANSACTION:
                break
            time.sleep((time.monotonic() - started) / 4)


def set_tags(conn: sqlite3.Connection, run_id: str, tags: Iterable[tuple[str, str]]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO mlflow_tags VALUES (?, ?, ?)",
        [(run_id, key, value) for key, value in tags],
    )


def delete_tag(conn: sqlite3.Connection, run_id: str, key: str) -> bool:
    cursor = conn.execute("DELETE FROM mlflow_tags WHERE run_id = ? AND key = ?", (run_id, key))
    return cursor.rowcount > 0


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


def insert_params(conn: sqlite3.Connection, run_id: str, params: Iterable[tuple[str, str]]):
    conn.executemany(
        "INSERT INTO mlflow_params VALUES (?, ?, ?)",
        [(run_id, key, value) for key, value in params],
    )


def run_config_sources(conn: sqlite3.Connection, run_id: str) -> tuple:
    """(name, user_id, status, start_time, lifecycle_stage), params and tags of a run: what
    its Trackio config is derived from."""
    run = conn.execute(
        "SELECT name, user_id, status, start_time, lifecycle_stage FROM mlflow_runs "
        "WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    params = dict(conn.execute("SELECT key, value FROM mlflow_params WHERE run_id = ?", (run_id,)))
    tags = dict(conn.execute("SELECT key, value FROM mlflow_tags WHERE run_id = ?", (run_id,)))
    return run, params, tags


def run_config(conn: sqlite3.Connection, run_id: str) -> dict:
    """The run's Trackio config as stored ({} if none, or not a JSON object)."""
    row = conn.execute("SELECT config FROM configs WHERE run_id = ?", (run_id,)).fetchone()
    try:
        config = json.loads(row[0]) if row else {}
    except ValueError:
        return {}
    return config if isinstance(config, dict) else {}


def run_name(conn: sqlite3.Connection, run_id: str) -> str | None:
    row = conn.execute("SELECT name FROM mlflow_runs WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] if row else None


def any_run_tagged(conn: sqlite3.Connection, key: str, value: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM mlflow_tags WHERE key = ? AND value = ? LIMIT 1", (key, value)
    ).fetchone()
    return row is not None


def config_value(conn: sqlite3.Connection, run_id: str, key: str) -> Any:
    """One top-level key of the run's Trackio config (None if unset or no config)."""
    row = conn.execute(
        "SELECT json_extract(config, ?) FROM configs WHERE run_id = ?", (f'$."{key}"', run_id)
    ).fetchone()
    return row[0] if row else None


def trackio_run_name(conn: sqlite3.Connection, run_id: str) -> str | None:
    """The name Trackio's dashboard shows for the run (its config row's), None before it has one."""
    row = conn.execute("SELECT run_name FROM configs WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] if row else None


def set_trackio_run_name(conn: sqlite3.Connection, run_id: str, name: str) -> None:
    """Show the run under `name` in Trackio (every row of it), leaving MLflow's name as it is."""
    for table in ("metrics", "configs", "system_metrics"):
        conn.execute(f"UPDATE {table} SET run_name = ? WHERE run_id = ?", (name, run_id))


def write_config(
    conn: sqlite3.Connection, run_id: str, run_name: str, config: dict, created_ms: int
) -> None:
    conn.execute(
        "INSERT INTO configs (run_id, run_name, config, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET run_name = excluded.run_name, "
        "config = excluded.config",
        (run_id, run_name, json.dumps(config, ensure_ascii=False), iso_from_ms(created_ms)),
    )


# --- Trackio's own runs (inside a transaction) --------------------------------------------------


def is_trackio_project(conn: sqlite3.Connection) -> bool:
    """Whether the file has Trackio's run tables (a version-2 file without them is no project)."""
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"metrics", "configs", "system_metrics"} <= names


def _distinct_run_ids(conn: sqlite3.Connection, table: str) -> list[str]:
    # A skip scan through Trackio's (run_id, ...) index: one index seek per run, not per row.
    return [
        row[0]
        for row in conn.execute(
            f"WITH RECURSIVE r(id) AS (SELECT min(run_id) FROM {table} UNION ALL "
            f"SELECT (SELECT min(run_id) FROM {table} WHERE run_id > r.id) FROM r "
            "WHERE r.id IS NOT NULL) SELECT id FROM r WHERE id IS NOT NULL"
        )
    ]


def trackio_run_ids(conn: sqlite3.Connection) -> list[str]:
    """Every run id in Trackio's tables (configs, metrics, system metrics)."""
    ids = {row[0] for row in conn.execute("SELECT run_id FROM configs")}
    ids.update(_distinct_run_ids(conn, "metrics"))
    ids.update(_distinct_run_ids(conn, "system_metrics"))
    return sorted(ids)


def unrecorded_run_ids(conn: sqlite3.Connection, adopted: bool) -> list[str]:
    """The runs in Trackio's tables that have no MLflow row: Trackio's own runs."""
    ids = trackio_run_ids(conn)
    if adopted and ids:
        recorded = {row[0] for row in conn.execute("SELECT run_id FROM mlflow_runs")}
        ids = [i for i in ids if i not in recorded]
    return ids


def has_trackio_run(conn: sqlite3.Connection, run_id: str) -> bool:
    return any(
        conn.execute(f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
        for table in ("configs", "metrics", "system_metrics")
    )


def trackio_run(conn: sqlite3.Connection, run_id: str) -> TrackioRun:
    config = conn.execute(
        "SELECT run_name, config, created_at FROM configs WHERE run_id = ?", (run_id,)
    ).fetchone() or (None, None, None)
    first, last = None, None
    for table in ("metrics", "system_metrics"):  # both indexed by (run_id, timestamp)
        low, high = conn.execute(
            f"SELECT min(timestamp), max(timestamp) FROM {table} WHERE run_id = ?", (run_id,)
        ).fetchone()
        first = low if first is None or (low is not None and low < first) else first
        last = high if last is None or (high is not None and high > last) else last
    name = config[0]
    if name is None:
        row = conn.execute(
            "SELECT run_name FROM metrics WHERE run_id = ? ORDER BY timestamp DESC LIMIT 1",
            (run_id,),
        ).fetchone() or conn.execute(
            "SELECT run_name FROM system_metrics WHERE run_id = ? ORDER BY timestamp DESC LIMIT 1",
            (run_id,),
        ).fetchone()
        name = row and row[0]
    return TrackioRun(run_id, name, config[1], config[2], first, last)


def trackio_rows(conn: sqlite3.Connection, run_id: str, system: bool) -> Iterator[tuple]:
    """(step, timestamp text, metrics JSON) of every metric (or system-metric) row of a run,
    the largest step first."""
    table, step = metric_table(system)
    yield from conn.execute(
        f"SELECT {step} AS s, timestamp, metrics FROM {table} WHERE run_id = ? ORDER BY s DESC",
        (run_id,),
    )


# --- metric rows (inside a transaction) ---------------------------------------------------------


_NEAR_SQL = {
    (table, column): f"SELECT 1 FROM {table} WHERE run_id = ? AND {column} BETWEEN ? AND ? LIMIT 1"
    for table in ("metrics", "system_metrics") for column in ("timestamp", "step")
}


def stored_points(
    conn: sqlite3.Connection, system: bool, run_id: str, pairs: set[tuple[int, int]]
) -> list[StoredPoint]:
    """A run's metric (or system-metric) rows at exactly the given (step, timestamp_ms) pairs.

    The cost follows the batch, not the run: two one-row range checks settle the common cases
    (new steps, or new timestamps) at once, and otherwise the lookup goes through whichever of
    Trackio's two indexes, (run_id, step) or (run_id, timestamp), holds fewer entries for the
    batch, which a bounded count tells without reading more than a few times the batch. (The
    planner alone cannot know: without statistics it may read every row at step 0, or every
    row at one repeated timestamp.)
    """
    table, step_sql = metric_table(system)
    steps = sorted({step for step, _ in pairs})
    stamps = iso_texts(sorted({ts for _, ts in pairs}))
    near = _NEAR_SQL
    if conn.execute(near[table, "timestamp"], (run_id, stamps[0], stamps[-1])).fetchone() is None:
        return []
    column, values = "timestamp", stamps
    if not system:  # Trackio's system table has no step column, and so no step index
        if conn.execute(near[table, "step"], (run_id, steps[0], steps[-1])).fetchone() is None:
            return []
        cap = 4 * len(pairs) + 64
        if _count_up_to(conn, "step", run_id, steps, cap) < _count_up_to(
            conn, "timestamp", run_id, stamps, cap
        ):
            column, values = "step", steps
    rows = []
    for chunk in _chunks(values, 500):
        rows += conn.execute(
            f"SELECT id, {step_sql}, timestamp, metrics FROM {table} "
            f"WHERE run_id = ? AND {column} IN ({','.join('?' * len(chunk))})",
            (run_id, *chunk),
        ).fetchall()
    found = []
    for row_id, step, text_ts, text in rows:
        point = StoredPoint(row_id, step, ms_from_iso(text_ts), text)
        if (point.step, point.timestamp_ms) in pairs:
            found.append(point)
    return found


def _has_joined_points(conn: sqlite3.Connection, run_id: str, quoted_key: str) -> bool:
    """Whether some of the run's points of a key joined a row stamped earlier."""
    try:
        found = conn.execute(
            "SELECT 1 FROM mlflow_joined_points WHERE run_id = ? AND key = ? LIMIT 1",
            (run_id, quoted_key),
        ).fetchone()
    except sqlite3.OperationalError as e:  # a file of Trackio's alone, or not yet migrated
        if "no such table" in str(e):
            return False
        raise
    return found is not None


def joined_points(
    conn: sqlite3.Connection, run_id: str, pairs: set[tuple[int, int]]
) -> list[StoredPoint]:
    """The points stored at exactly the given (step, timestamp_ms) pairs that joined a row
    stamped earlier, each as the id of the row that shows it, its step and time, and a one-key
    metrics JSON. One index probe per pair."""
    return _points_for_values(
        conn,
        "WITH p(step, timestamp) AS (VALUES {values}) "
        "SELECT j.row_id, j.step, j.timestamp, j.metrics FROM p JOIN mlflow_joined_points j "
        "ON j.run_id = ? AND j.step = p.step AND j.timestamp = p.timestamp",
        [(step, iso_from_ms(ts)) for step, ts in sorted(pairs)],
        run_id,
    )


def joined_keys(conn: sqlite3.Connection, row_ids: Sequence[int]) -> set[tuple[int, str]]:
    """(row id, quoted key) of the points in these rows that joined them from a later time."""
    keys: set[tuple[int, str]] = set()
    for chunk in _chunks(list(row_ids), 500):
        keys.update(conn.execute(
            "SELECT row_id, key FROM mlflow_joined_points "
            f"WHERE row_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ))
    return keys


def has_metric_rows(conn: sqlite3.Connection, run_id: str, first_step: int, last_step: int) -> bool:
    """Whether the run has a metrics row at a step from `first_step` to `last_step`."""
    return conn.execute(_NEAR_SQL["metrics", "step"], (run_id, first_step, last_step)).fetchone() is not None


def last_metric_time(conn: sqlite3.Connection, run_id: str) -> str | None:
    """The timestamp text of the run's latest metrics row (one step of Trackio's index)."""
    return conn.execute("SELECT max(timestamp) FROM metrics WHERE run_id = ?", (run_id,)).fetchone()[0]


def metric_rows_stamped(conn: sqlite3.Connection, run_id: str, after: str, up_to: str) -> bool:
    """Whether the run has a metrics row stamped after `after` and up to `up_to` (texts)."""
    return conn.execute(
        "SELECT 1 FROM metrics WHERE run_id = ? AND timestamp > ? AND timestamp <= ? LIMIT 1",
        (run_id, after, up_to),
    ).fetchone() is not None


def latest_rows_at_steps(
    conn: sqlite3.Connection, run_id: str, steps: Iterable[int]
) -> list[StoredPoint]:
    """The run's most recently written metrics row at each of `steps`, where that row is one
    mytracker wrote for metrics (no log_id: not Trackio's, not an image's, not the placeholder):
    one probe of Trackio's (run_id, step) index per step."""
    return _points_for_values(
        conn,
        "WITH s(step) AS (VALUES {values}) SELECT m.id, m.step, m.timestamp, m.metrics "
        "FROM s JOIN metrics m ON m.id = (SELECT id FROM metrics WHERE run_id = ? "
        "AND step = s.step ORDER BY id DESC LIMIT 1) WHERE m.log_id IS NULL",
        [(step,) for step in sorted(steps)],
        run_id,
    )


def _points_for_values(
    conn: sqlite3.Connection, sql: str, tuples: list[tuple], run_id: str
) -> list[StoredPoint]:
    """Run `sql`, whose `{values}` is a VALUES list of the tuples and whose last parameter is the
    run id, 500 tuples at a time; its (row id, step, timestamp text, metrics) rows as points."""
    found = []
    for chunk in _chunks(tuples, 500):
        values = ", ".join(["(" + ", ".join("?" * len(chunk[0])) + ")"] * len(chunk))
        rows = conn.execute(sql.format(values=values), [v for t in chunk for v in t] + [run_id])
        found += [StoredPoint(row_id, step, ms_from_iso(ts), text) for row_id, step, ts, text in rows]
    return found


def insert_metric_row(
    conn: sqlite3.Connection, run_id: str, run_name: str, timestamp_ms: int, step: int, text: str
) -> int:
    """Insert one Trackio metrics row; returns its id. (The caller drops the run's placeholder
    once the batch's other rows are written: one of them may be filling it.)"""
    return conn.execute(
        "INSERT INTO metrics (run_id, run_name, timestamp, step, metrics) VALUES (?, ?, ?, ?, ?)",
        (run_id, run_name, iso_from_ms(timestamp_ms), step, text),
    ).lastrowid


def insert_joined_points(conn: sqlite3.Connection, run_id: str, points: list[tuple]) -> None:
    """Record points shown in a row stamped earlier, given as (row id, quoted key, step,
    timestamp_ms, one-key metrics JSON)."""
    conn.executemany(
        "INSERT INTO mlflow_joined_points (row_id, key, run_id, step, timestamp, metrics) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(row_id, key, run_id, step, iso_from_ms(ts), text)
         for row_id, key, step, ts, text in points],
    )


def _count_up_to(conn, column: str, run_id: str, values: list, cap: int) -> int:
    """How many metrics rows the run has at `values` of `column` (Trackio indexes both step
    and timestamp with run_id), counting no further than `cap`: an index-only scan."""
    total = 0
    for chunk in _chunks(values, 500):
        total += conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM metrics WHERE run_id = ? "
            f"AND {column} IN ({','.join('?' * len(chunk))}) LIMIT {cap - total})",
            (run_id, *chunk),
        ).fetchone()[0]
        if total >= cap:
            break
    return total


def update_rows(conn: sqlite3.Connection, system: bool, rows: list[tuple[int, str]]) -> None:
    """Replace the metrics JSON of rows given as (row id, metrics JSON)."""
    conn.executemany(
        f"UPDATE {metric_table(system)[0]} SET metrics = ? WHERE id = ?",
        [(text, row_id) for row_id, text in rows],
    )


def insert_metric_rows(conn: sqlite3.Connection, run_id: str, run_name: str, rows: list) -> None:
    """Insert Trackio metric rows given as one flat list: timestamp_ms, step, metrics JSON,
    then the next row's three."""
    values = rows.copy()
    values[0::3] = iso_texts(rows[0::3])
    table = "metrics (run_id, run_name, timestamp, step, metrics)"
    _insert_values(conn, table, (run_id, run_name), 3, values)
    drop_placeholder(conn, run_id)


def insert_system_rows(conn: sqlite3.Connection, run_id: str, run_name: str, rows: list) -> None:
    """Insert Trackio system-metric rows, given as `insert_metric_rows` takes them (the JSON
    already carries the step: Trackio's system table has no column for it)."""
    values = [None] * (len(rows) // 3 * 2)
    values[0::2] = iso_texts(rows[0::3])
    values[1::2] = rows[2::3]
    table = "system_metrics (run_id, run_name, timestamp, metrics)"
    _insert_values(conn, table, (run_id, run_name), 2, values)


def _latest_rank(table: str) -> str:
    value = f"min(max(coalesce({table}.value, 0), {-MAX_DOUBLE!r}), {MAX_DOUBLE!r})"
    return f"({table}.step, {table}.timestamp, {value})"


_UPSERT_LATEST_SQL = (
    "INSERT INTO mlflow_latest_metrics (run_id, key, value, timestamp, step, is_nan, logged) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO UPDATE SET "
    "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
    f"is_nan = excluded.is_nan WHERE {_latest_rank('excluded')} > "
    f"{_latest_rank('mlflow_latest_metrics')}"
)


def first_logged(keys: Iterable[str]) -> dict[str, int]:
    """For `upsert_latest_metrics`: when each key is logged first if it is new to the run, now
    (ns) plus its place among `keys`, so new keys list in the order given."""
    first = time.time_ns()
    return {key: first + i for i, key in enumerate(dict.fromkeys(keys))}


def upsert_latest_metrics(
    conn: sqlite3.Connection, run_id: str,
    latest: Iterable[tuple[str, float | None, int, int, int, int]],
) -> None:
    """Keep, per key, the point MLflow calls latest: the largest (step, timestamp, value),
    comparing NaN as 0 and infinities as the largest finite doubles, as MLflow's SQL store.
    Each point ends with when its key was logged first (`first_logged`): the run lists its keys
    so, and an update keeps the key's."""
    conn.executemany(_UPSERT_LATEST_SQL, [(run_id, *point) for point in latest])


def insert_media_rows(conn: sqlite3.Connection, rows: list[tuple]) -> int:
    """Show images and tables, given as metrics rows (run_id, timestamp, run_name, step, metrics JSON of
    one key, log_id), in the caller's transaction; returns how many were new. As Trackio keeps
    what one `trackio.log` call logs, an image joins the run's latest row of its step when that
    row does not have its key (so Trackio counts a step once), else it gets a row of its own.
    An image already shown at its step (its file path is in a row of that step, or its log_id
    is taken) is skipped: publishing again adds nothing."""
    added = 0
    for run_id in {row[0] for row in rows}:
        drop_placeholder(conn, run_id)
    for run_id, timestamp, run_name, step, text, log_id in rows:
        ((key, value),) = json.loads(text).items()
        marker = value.get("file_path") or value["source"]  # an image's file, a table's version
        shown = conn.execute(
            "SELECT 1 FROM metrics WHERE run_id = ? AND step = ? AND instr(metrics, ?) LIMIT 1",
            (run_id, step, json.dumps(marker, ensure_ascii=False)),
        ).fetchone()
        if shown or conn.execute("SELECT 1 FROM metrics WHERE log_id = ?", (log_id,)).fetchone():
            continue
        latest = conn.execute(
            "SELECT id, metrics FROM metrics WHERE run_id = ? AND step = ? ORDER BY id DESC LIMIT 1",
            (run_id, step),
        ).fetchone()
        merged = json.loads(latest[1]) if latest else None
        if merged is not None and key not in merged:
            merged[key] = value
            # Compact JSON: Trackio finds its Media tab by GLOB-matching '"_type":"trackio.image"'.
            conn.execute(
                "UPDATE metrics SET metrics = ? WHERE id = ?",
                (json.dumps(merged, separators=(",", ":"), ensure_ascii=False), latest[0]),
            )
        else:
            conn.execute(
                "INSERT INTO metrics (run_id, timestamp, run_name, step, metrics, log_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, timestamp, run_name, step, text, log_id),
            )
        added += 1
    return added


def last_logged(path: Path) -> str | None:
    """The timestamp of the metric row written last into a project file (rows are numbered in
    the order they were written), read without a lock, a write or a migration; None for a file
    that is no readable Trackio project. File times cannot tell: SQLite rewrites a project file
    whenever a connection closes and checkpoints its WAL."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT timestamp FROM metrics ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


# --- datasets, outputs, traces (inside a transaction) -------------------------------------------


def log_inputs(conn: sqlite3.Connection, run_id: str, dataset_inputs: list[DatasetInputRow]):
    """Link datasets to a run, each dataset stored once per experiment (by name and digest)."""
    position = conn.execute(
        "SELECT coalesce(max(position) + 1, 0) FROM mlflow_inputs WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    for dataset, tags in dataset_inputs:
        name, digest = dataset[:2]
        row = conn.execute(
            "SELECT dataset_uuid FROM mlflow_datasets WHERE name = ? AND digest = ?",
            (name, digest),
        ).fetchone()
        if row is None:
            dataset_uuid = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO mlflow_datasets VALUES (?, ?, ?, ?, ?, ?, ?)", (dataset_uuid, *dataset)
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


def log_outputs(conn: sqlite3.Connection, run_id: str, outputs: list[tuple[str, int]]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO mlflow_outputs VALUES (?, ?, ?)",
        [(run_id, model_id, step) for model_id, step in outputs],
    )


def link_traces(conn: sqlite3.Connection, run_id: str, trace_ids: list[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO mlflow_trace_links VALUES (?, ?)",
        [(run_id, trace_id) for trace_id in trace_ids],
    )


def dataset_summaries(conn: sqlite3.Connection, limit: int) -> list[tuple]:
    """(name, digest, context or None) of the file's datasets, each distinct once."""
    return conn.execute(
        "SELECT DISTINCT d.name, d.digest, t.value FROM mlflow_datasets d "
        "JOIN mlflow_inputs i ON i.dataset_uuid = d.dataset_uuid "
        "LEFT JOIN mlflow_input_tags t ON t.input_uuid = i.input_uuid "
        "AND t.name = 'mlflow.data.context' "
        f"LIMIT {int(limit)}"
    ).fetchall()


# --- logged models (inside a transaction) --------------------------------------------------------

LOGGED_MODEL_COLUMNS = (
    "model_id", "experiment_id", "name", "artifact_location", "creation_timestamp_ms",
    "last_updated_timestamp_ms", "status", "lifecycle_stage", "model_type", "source_run_id",
    "status_message",
)


class LoggedModelRow(NamedTuple):
    model_id: str
    experiment_id: int
    name: str
    artifact_location: str
    creation_timestamp_ms: int
    last_updated_timestamp_ms: int
    status: int
    lifecycle_stage: str
    model_type: str | None
    source_run_id: str | None
    status_message: str | None


class ModelMetricRow(NamedTuple):
    key: str
    value: float | None
    timestamp: int
    step: int
    run_id: str
    dataset_name: str | None
    dataset_digest: str | None


@dataclass
class LoggedModelRecord:
    """Everything MLflow's LoggedModel entity holds, as stored."""

    row: LoggedModelRow
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[ModelMetricRow] = field(default_factory=list)


def has_logged_models_table(conn: sqlite3.Connection) -> bool:
    """False for a plain Trackio file, or a read-only one made before logged models."""
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'mlflow_logged_models'").fetchone()
        is not None
    )


def logged_model_row(conn: sqlite3.Connection, model_id: str) -> LoggedModelRow | None:
    row = conn.execute(
        f"SELECT {', '.join(LOGGED_MODEL_COLUMNS)} FROM mlflow_logged_models WHERE model_id = ?",
        (model_id,),
    ).fetchone()
    return None if row is None else LoggedModelRow(*row)


def insert_logged_model(
    conn: sqlite3.Connection, row: LoggedModelRow, tags: Iterable[tuple[str, str]],
    params: Iterable[tuple[str, str]],
) -> None:
    conn.execute(
        f"INSERT INTO mlflow_logged_models VALUES ({','.join('?' * len(LOGGED_MODEL_COLUMNS))})",
        row,
    )
    insert_logged_model_params(conn, row.model_id, params)
    set_logged_model_tags(conn, row.model_id, tags)


def update_logged_model(conn: sqlite3.Connection, model_id: str, **fields: Any) -> None:
    assignments = ", ".join(f"{column} = ?" for column in fields)
    conn.execute(
        f"UPDATE mlflow_logged_models SET {assignments} WHERE model_id = ?",
        (*fields.values(), model_id),
    )


def insert_logged_model_params(
    conn: sqlite3.Connection, model_id: str, params: Iterable[tuple[str, str]]
) -> None:
    """Raises sqlite3.IntegrityError for a key the model already has, as MLflow's SQL store."""
    conn.executemany(
        "INSERT INTO mlflow_logged_model_params VALUES (?, ?, ?)",
        [(model_id, key, value) for key, value in params],
    )


def set_logged_model_tags(
    conn: sqlite3.Connection, model_id: str, tags: Iterable[tuple[str, str]]
) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO mlflow_logged_model_tags VALUES (?, ?, ?)",
        [(model_id, key, value) for key, value in tags],
    )


def delete_logged_model_tag(conn: sqlite3.Connection, model_id: str, key: str) -> bool:
    return conn.execute(
        "DELETE FROM mlflow_logged_model_tags WHERE model_id = ? AND key = ?", (model_id, key)
    ).rowcount > 0


def run_tags(conn: sqlite3.Connection, run_id: str, keys: Sequence[str]) -> dict[str, str]:
    marks = ",".join("?" * len(keys))
    return dict(
        conn.execute(
            f"SELECT key, value FROM mlflow_tags WHERE run_id = ? AND key IN ({marks})",
            (run_id, *keys),
        )
    )


def insert_logged_model_metrics(conn: sqlite3.Connection, run_id: str, rows: list[tuple]) -> None:
    """rows: (model_id, key, timestamp, step, value, dataset_name, dataset_digest); a point
    already stored for the model, key, timestamp, step and run is kept."""
    conn.executemany(
        "INSERT OR IGNORE INTO mlflow_logged_model_metrics "
        "(model_id, key, timestamp, step, run_id, value, dataset_name, dataset_digest) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(m, k, t, s, run_id, v, dn, dd) for m, k, t, s, v, dn, dd in rows],
    )


def load_logged_models(
    conn: sqlite3.Connection, model_ids: Sequence[str]
) -> dict[str, LoggedModelRecord]:
    models: dict[str, LoggedModelRecord] = {}
    for chunk in _chunks(list(model_ids), 500):
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT {', '.join(LOGGED_MODEL_COLUMNS)} FROM mlflow_logged_models "
            f"WHERE model_id IN ({marks})",
            chunk,
        ):
            models[row[0]] = LoggedModelRecord(LoggedModelRow(*row))
        for table, attribute in (
            ("mlflow_logged_model_tags", "tags"), ("mlflow_logged_model_params", "params")
        ):
            for model_id, key, value in conn.execute(
                f"SELECT model_id, key, value FROM {table} WHERE model_id IN ({marks})", chunk
            ):
                getattr(models[model_id], attribute)[key] = value
        for model_id, *metric in conn.execute(
            "SELECT model_id, key, value, timestamp, step, run_id, dataset_name, dataset_digest "
            f"FROM mlflow_logged_model_metrics WHERE model_id IN ({marks}) "
            "ORDER BY model_id, key, timestamp, step, run_id",
            chunk,
        ):
            if model_id in models:
                models[model_id].metrics.append(ModelMetricRow(*metric))
    return models


def _model_compare(column: str, comparator: str, value: Any) -> tuple[str, list]:
    if comparator in ("IN", "NOT IN"):
        values = list(value)
        return f"{column} {comparator} ({','.join('?' * len(values))})", values
    if comparator == "ILIKE":
        return f"lower({column}) LIKE lower(?)", [value]
    if comparator not in ("=", "!=", "<", "<=", ">", ">=", "LIKE"):
        raise ValueError(f"unsupported comparator {comparator!r}")
    return f"{column} {comparator} ?", [value]


def search_logged_models(
    conn: sqlite3.Connection,
    clauses: Sequence[tuple[str, str, str, Any]],
    datasets: Sequence[tuple[str, str | None]],
    metric_orders: Sequence[tuple[str, str | None, str | None]],
) -> list[tuple[LoggedModelRow, tuple]]:
    """The file's models (not deleted) matching every clause, with the latest value of each
    ordering metric (None when missing), with MLflow's SQL-store semantics.

    clauses: (kind, key, comparator, value), kind one of "attributes", "metrics", "params",
    "tags" (attribute keys are column names, checked by the caller). datasets: (name, digest
    or None) of which a metric must have one. metric_orders: (key, dataset_name, dataset_digest).
    """
    if not has_logged_models_table(conn):
        return []
    dataset_sql, dataset_args = [], []
    for name, digest in datasets:
        if digest is None:
            dataset_sql.append("e.dataset_name = ?")
            dataset_args.append(name)
        else:
            dataset_sql.append("(e.dataset_name = ? AND e.dataset_digest = ?)")
            dataset_args += [name, digest]
    any_dataset = f"({' OR '.join(dataset_sql)})" if dataset_sql else None
    where, args = ["m.lifecycle_stage != 'deleted'"], []
    has_metric_clause = False
    for kind, key, comparator, value in clauses:
        if kind == "attributes":
            sql, clause_args = _model_compare(f"m.{key}", comparator, value)
            where.append(sql)
            args += clause_args
            continue
        table = {
            "metrics": "mlflow_logged_model_metrics", "params": "mlflow_logged_model_params",
            "tags": "mlflow_logged_model_tags",
        }[kind]
        sql, clause_args = _model_compare("e.value", comparator, value)
        extra = ""
        if kind == "metrics":
            has_metric_clause = True
            if any_dataset:
                extra = f" AND {any_dataset}"
                clause_args = clause_args + dataset_args
        where.append(
            f"EXISTS (SELECT 1 FROM {table} e WHERE e.model_id = m.model_id AND e.key = ? "
            f"AND {sql}{extra})"
        )
        args += [key, *clause_args]
    if any_dataset and not has_metric_clause:
        where.append(
            "EXISTS (SELECT 1 FROM mlflow_logged_model_metrics e WHERE e.model_id = m.model_id "
            f"AND {any_dataset})"
        )
        args += dataset_args
    columns = [f"m.{c}" for c in LOGGED_MODEL_COLUMNS]
    order_args: list[Any] = []
    for key, dataset_name, dataset_digest in metric_orders:
        # The latest value: newest timestamp, then highest step, then the first run id.
        conditions, condition_args = ["e.model_id = m.model_id", "e.key = ?"], [key]
        if dataset_name:
            conditions.append("e.dataset_name = ?")
            condition_args.append(dataset_name)
        if dataset_digest:
            conditions.append("e.dataset_digest = ?")
            condition_args.append(dataset_digest)
        columns.append(
            f"(SELECT e.value FROM mlflow_logged_model_metrics e WHERE {' AND '.join(conditions)} "
            "ORDER BY e.timestamp DESC, e.step DESC, e.run_id ASC LIMIT 1)"
        )
        order_args += condition_args
    sql = f"SELECT {', '.join(columns)} FROM mlflow_logged_models m WHERE {' AND '.join(where)}"
    width = len(LOGGED_MODEL_COLUMNS)
    return [
        (LoggedModelRow(*row[:width]), tuple(row[width:]))
        for row in conn.execute(sql, (*order_args, *args))
    ]


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


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
