"""Which file holds what: the data directory's project files, opened and located.

Every experiment is one Trackio project file, ``<dir>/<project>.db``; the files are the only
source of truth. The catalog keeps a bounded cache of open files, creates new project files
safely, and keeps a directory index (``.mytracker-catalog.sqlite``) so that listing, finding an
experiment, or finding a run or a model by id does not open every file:

- each project file's experiment row is recorded with the file's identity (inode, and what
  `stat` says of the file and its WAL). The rows are trusted while the directory's own identity
  (inode and mtime, which every file added, removed or renamed changes) is the one recorded
  when the index last matched the directory's entries, so a call does not look at every file;
  when it changed, every file's identity is looked at and only changed files are read. Contents
  change in place, so every process marks a file in the index before it changes the file's
  experiment (name, tags, stage) and records the change after: a marked file is read at every
  look until then, and the mark of a process that died first goes once the file was read
  again. Trackio's own projects, files that cannot be used yet and files changed within the
  last 0.1 s are checked by identity at every look. Writes of the index carry the version they
  read at: what was read before another process's write never overwrites it. So another
  process's writes never make the index lie. What it does not see at once: a file rewritten in
  place by a program other than mytracker (`cp` onto it, the `sqlite3` shell) until the file is
  next looked up by id or name or the directory next changes, and a file another program adds
  or removes in the same moment as this process changes the directory (see `_own_change`),
  until the directory next changes;
- run and model ids are recorded with their file when made, and on a miss the ids of every file
  changed since its ids were last read are read again;
- the index is a cache: deleted or damaged, it is rebuilt from the files (the first listing then
  opens every file once); where it cannot be written it lives in memory for the process, which
  then looks at every file's identity at every look, and moves the directory's mtime after it
  changes an experiment so that other processes do (a process killed in between leaves that
  change unseen by their listings until the directory next changes).

A Trackio project mytracker did not make is an experiment too (read by ``_native``, with an id
derived from its file name), and the run ids of Trackio's own tables are indexed with the rest.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson  # a dependency of Trackio's

from mytracker.store import _dashboard, _native
from mytracker.store._db import (
    DatabaseError,
    ExperimentRow,
    ProjectDB,
    file_lock,
    share_with_group,
    write_new_project,
)
from mytracker.store._trackio import NATIVE_ID_BASE, project_stem

_logger = logging.getLogger(__name__)

MAX_OPEN_FILES = 64
_ID_MARK = ".mytracker.ids"  # the largest experiment id handed out (see `new_experiment_id`)
INDEX_FILE = ".mytracker-catalog.sqlite"  # not *.db: Trackio lists every *.db as a project
_RACY_NS = 100_000_000  # a file changed this recently is read again, whatever its identity
# A directory listed within this long of its last change is listed once more after it: a change
# in the same clock tick (at most 10 ms where timestamps are coarse: Linux's HZ >= 100) may have
# left its mtime as it was.
_RACY_DIRECTORY_NS = 20_000_000
_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    name TEXT PRIMARY KEY,     -- the project file's name in the directory
    identity TEXT NOT NULL,    -- `_identity` of the file when `experiment` was read
    watch INTEGER NOT NULL,    -- 1: `stat` the file at every look (see `_needs_watching`)
    experiment TEXT,           -- its ExperimentRow as JSON; NULL: no experiment in it
    problem TEXT,              -- why the file cannot be used, if it cannot
    -- the experiment's fields that searches filter on, copied from `experiment`:
    experiment_id TEXT,
    experiment_name TEXT,
    lifecycle_stage TEXT,
    creation_time INTEGER,
    last_update_time INTEGER
);
CREATE INDEX IF NOT EXISTS files_experiment_id ON files(experiment_id);
CREATE INDEX IF NOT EXISTS files_experiment_name ON files(experiment_name);
CREATE INDEX IF NOT EXISTS files_watched ON files(name) WHERE watch;
CREATE INDEX IF NOT EXISTS files_number ON files(CAST(experiment_id AS INTEGER));
CREATE TABLE IF NOT EXISTS experiment_tags (  -- the tags in `files.experiment`, to filter on
    name TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS listing (  -- one row
    one INTEGER PRIMARY KEY CHECK (one = 1),
    directory TEXT,            -- the directory's identity when `files` last matched its entries
    version INTEGER NOT NULL,  -- one more at every write of `files` (see `_Index.write`)
    recheck INTEGER            -- time (ns) from which the directory is to be listed once more
);
INSERT OR IGNORE INTO listing VALUES (1, NULL, 0, NULL);
CREATE TABLE IF NOT EXISTS changing (  -- files whose experiment a process is changing now
    mark TEXT PRIMARY KEY, name TEXT NOT NULL, pid INTEGER NOT NULL, started REAL,
    host TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, name TEXT NOT NULL);  -- runs and models
CREATE TABLE IF NOT EXISTS ids_read (name TEXT PRIMARY KEY, identity TEXT NOT NULL);
"""
# What the index records of a file changed with: 2 reads Trackio's own projects and run ids
# (see `_native`), which version 1 (user_version 0) recorded as holding nothing; 3 adds the
# columns and tags that searches filter on; 4 trusts the directory's identity (`listing`) and
# the marks of writers (`changing`) instead of a `stat` of every file.
_INDEX_VERSION = 4
# What `_current` takes of a row: the version is read with it, in the same statement.
_ROW_COLUMNS = "name, identity, experiment, problem, (SELECT version FROM listing)"
# Dropped for another version:
_RECORDED_TABLES = ("files", "experiment_tags", "ids_read", "listing", "changing")


def _identity(path: str | Path, wal_exists: bool = True, dir_fd: int | None = None) -> str | None:
    """The file's identity, "racy" if it changed in the last 0.1 s, or None if it is gone.

    While its WAL holds frames, every commit appends to the WAL (or rewrites it from the start),
    so the file's inode and the WAL's size and mtime tell its content; the file's own mtime is
    left out, as a checkpoint (which copies committed pages into it, changing nothing a reader
    sees) moves it. Without a WAL, or with an empty one (readers open and close one without
    changing anything), the file's inode, size and mtime. (`wal_exists` False: a directory
    listing just showed there is none, so it is not looked for; `dir_fd`: `path` is a name in
    that open directory.)"""
    try:
        main = os.stat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    changed, identity = main.st_mtime_ns, f"{main.st_ino}:{main.st_size}:{main.st_mtime_ns}"
    if wal_exists:
        try:
            wal = os.stat(f"{path}-wal", dir_fd=dir_fd)
            if wal.st_size:
                changed = wal.st_mtime_ns
                identity = f"{main.st_ino}:wal:{wal.st_size}:{wal.st_mtime_ns}"
        except FileNotFoundError:
            pass
    if time.time_ns() - changed < _RACY_NS:
        return "racy"
    return identity


def _directory_identity(path: Path) -> str | None:
    """A directory's "inode:mtime_ns" (adding, removing or renaming an entry changes it), or
    None if it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_ino}:{st.st_mtime_ns}"


# The index's rows match the directory after a change of its own: the recorded identity moves
# along with it (if it was the one the change started from).
_MOVE_ALONG_SQL = "UPDATE listing SET directory = ? WHERE directory = ?"


class _Index:
    """The directory index: a SQLite file of its own, beside the project files."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / INDEX_FILE
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._in_memory = False
        self.failed_writes = 0  # a reader that wrote during a pass checks this did not change

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._pid = os.getpid()
            if self._in_memory:
                self._conn = self._open(":memory:", copy_of=self.path)
                return self._conn
            try:
                before = _directory_identity(self.path.parent)
                self._conn = self._open(str(self.path))
                with suppress(sqlite3.DatabaseError):  # e.g. read-only: its next look lists
                    # Its -wal and -shm, if it made them, are no news of the directory's files.
                    self._conn.execute(
                        _MOVE_ALONG_SQL, (_directory_identity(self.path.parent), before)
                    )
            except sqlite3.DatabaseError:  # damaged: it is only a cache
                for leftover in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                    try:
                        leftover.unlink(missing_ok=True)
                    except OSError:
                        pass
                try:
                    self._conn = self._open(str(self.path))
                except sqlite3.DatabaseError:  # e.g. a read-only directory: this process only
                    self._in_memory = True
                    self._conn = self._open(":memory:")
        return self._conn

    @staticmethod
    def _open(target: str, copy_of: Path | None = None) -> sqlite3.Connection:
        """The index at `target`, made if need be; in memory (":memory:"), a copy of what the
        index at `copy_of` holds, if it can be read (so its rows need not be read again)."""
        new = target != ":memory:" and not os.path.exists(target)
        conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
        if new:  # its -wal and -shm are made with its mode
            share_with_group(target)
        if copy_of is not None:
            with suppress(sqlite3.DatabaseError), closing(
                sqlite3.connect(f"file:{copy_of}?mode=ro", uri=True, timeout=30)
            ) as source:
                source.backup(conn)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # A cache checked against the files' identities: losing its last commits in a power
            # cut only makes the next call read those files again.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA case_sensitive_like = true")  # as MLflow's SQLite store
            if conn.execute("PRAGMA user_version").fetchone()[0] != _INDEX_VERSION:
                # Recorded by another version: every file is read again (ids are only hints).
                drops = "".join(f"DROP TABLE IF EXISTS {table};" for table in _RECORDED_TABLES)
                conn.executescript(
                    f"BEGIN IMMEDIATE;{drops}{_INDEX_SCHEMA}"
                    f"PRAGMA user_version = {_INDEX_VERSION}; COMMIT;"
                )
            conn.executescript(_INDEX_SCHEMA)
            conn.execute("SELECT count(*) FROM files").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def query(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._connection().execute(sql, args).fetchall()
            except sqlite3.DatabaseError:
                self._conn = None  # damaged under us: rebuilt on the next call
                return []

    def write(self, *statements: tuple[str, list[tuple]], version: int | None = None) -> bool:
        """Run each (sql, rows) with `executemany`, all in one transaction, and return whether
        it was written. With `version` (what `listing` said before the caller read the files
        it records), nothing is written if another writer came in between: what this caller
        read may be older than what that writer recorded (it reads again, or leaves it to the
        next look); else the version goes one up. If the index cannot be written, this process
        goes on with an index in memory (rebuilt from the files): an index it cannot write
        could otherwise keep rows of files that changed."""
        if version is None and not any(rows for _, rows in statements):
            return True
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if version is not None:
                        if conn.execute("SELECT version FROM listing").fetchone()[0] != version:
                            conn.execute("ROLLBACK")
                            return False
                        conn.execute("UPDATE listing SET version = version + 1")
                    for sql, rows in statements:
                        conn.executemany(sql, rows)
                    conn.execute("COMMIT")
                    return True
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as e:
                _logger.warning("Using an in-memory directory index: cannot write %s (%s)",
                                self.path, e)
                self.failed_writes += 1
                self._in_memory, self._conn = True, None
                return False

    @property
    def in_memory(self) -> bool:
        return self._in_memory

    def listing(self) -> tuple[str | None, int, int | None]:
        """The directory's identity when the index last matched its entries, the version, and
        when the directory is to be listed once more (see `Catalog._sync`)."""
        rows = self.query("SELECT directory, version, recheck FROM listing")
        return rows[0] if rows else (None, -1, None)


_SQL_COMPARATORS = {"=", "!=", "<", "<=", ">", ">="}
_TIME_COLUMNS = {"creation_time", "last_update_time"}


def experiment_filter_sql(parsed_filter: list[dict]) -> tuple[str, list]:
    """SQL over the index's `files` rows for the clauses of a parsed MLflow experiment filter
    (`SearchExperimentsUtils.parse_search_filter`) that it can answer as MLflow's SQLite store
    does: the name (=, !=, LIKE, ILIKE), creation and last update times, and tags. Other
    clauses are left out, so the rows it selects are a superset: the caller still applies the
    whole filter to them.

    >>> experiment_filter_sql([{"type": "attribute", "key": "name", "comparator": "LIKE",
    ...                         "value": "exp-%"}])
    ('experiment_name LIKE ?', ['exp-%'])
    """
    clauses, args = [], []
    for clause in parsed_filter:
        kind, key, value = clause["type"], clause["key"], clause["value"]
        comparator = clause["comparator"].upper()
        if kind == "attribute" and key == "name" and isinstance(value, str):
            sql = _compare("experiment_name", comparator)
        elif kind == "attribute" and key in _TIME_COLUMNS and comparator in _SQL_COMPARATORS:
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue  # the caller's filter raises MLflow's error for it
            sql = f"{key} {comparator} ?"
        elif kind == "tag" and comparator in ("IS NULL", "IS NOT NULL"):
            negation = "NOT " if comparator == "IS NULL" else ""
            clauses.append(f"{negation}EXISTS (SELECT 1 FROM experiment_tags t "
                           "WHERE t.name = files.name AND t.key = ?)")
            args.append(key)
            continue
        elif kind == "tag" and isinstance(value, str):
            sql = _compare("t.value", comparator)
            sql = sql and ("EXISTS (SELECT 1 FROM experiment_tags t "
                           f"WHERE t.name = files.name AND t.key = ? AND {sql})")
            if sql:
                args.append(key)
        else:
            continue
        if sql:
            clauses.append(sql)
            args.append(value)
    return " AND ".join(clauses), args


def _compare(column: str, comparator: str) -> str | None:
    """A string comparison as MLflow's SQLite store makes it (LIKE case-sensitive, ILIKE
    lower-casing both sides), or None for a comparator it does not take."""
    if comparator in ("=", "!=", "LIKE"):
        return f"{column} {comparator} ?"
    if comparator == "ILIKE":
        return f"lower({column}) LIKE lower(?)"
    return None


def _experiment_json(experiment: ExperimentRow) -> str:
    return orjson.dumps(experiment._asdict()).decode()


def _experiment_from_json(text: str) -> ExperimentRow:
    return ExperimentRow(**orjson.loads(text))

# A new project file is first made as `.<file>.<pid>.<host>.draft` (older versions: without the
# host), plus SQLite's -wal/-shm/-journal beside it while open.
_DRAFT = re.compile(r"\.[^.]+\.db\.(\d+)(?:\.(.+))?\.draft(?:-wal|-shm|-journal)?")


def _host() -> str:
    # ASCII only and short: the draft's file name must stay under 255 bytes (see _trackio).
    name = "".join(c for c in socket.gethostname() if c.isascii() and (c.isalnum() or c in "-_"))
    return name[:32] or "host"


def _cannot_write(path: Path, error: OSError) -> DatabaseError:
    """An OSError while making a file, named for a person, with what to do about it."""
    if error.errno == errno.ENOSPC:
        advice = "the disk is full; free disk space (nothing was written)"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "make the data directory and its files writable (nothing was written)"
    else:
        advice = "nothing was written"
    return DatabaseError(f"Cannot write {path}: {error.strerror or error}; {advice}.")


def _make_draft(draft: Path, fields: tuple) -> str:
    """Write a new experiment's file to `draft` and return its identity. Its mtime is set back
    by twice the racy interval: the identity is then trusted at once, while any later write
    (which stamps the time of writing) still changes it."""
    write_new_project(draft, *fields)
    past_ns = time.time_ns() - 2 * _RACY_NS
    os.utime(draft, ns=(past_ns, past_ns))
    return _identity(draft, wal_exists=False)



def _link_into_place(draft: Path, path: Path) -> bool:
    """Give the draft its project file's name, unless a file appeared there (False)."""
    try:
        os.link(draft, path)  # never replaces a file someone may have open
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A file system without hard links: still under Trackio's lock, looked at just now,
        # so only a program that takes neither lock could get in between.
        if _occupied(path):
            return False
        os.rename(draft, path)
    return True


def _occupied(path: Path) -> bool:
    """Whether a project file, or what SQLite keeps beside one, is at `path`."""
    return any(
        os.path.lexists(f"{path}{suffix}") for suffix in ("", "-wal", "-shm", "-journal")
    )


def _wait_for_trackio(path: Path) -> bool:
    """Wait until no Trackio writer holds the project lock of `path` (the lock is only looked
    for, never made: this is a read). False if there is no such lock to wait for."""
    if not path.with_suffix(".lock").exists():
        return False
    try:
        with _native.trackio_lock(path):
            return True
    except DatabaseError:  # e.g. another user's lock file we cannot open
        return False


def process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if that cannot be told."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # gone, or not ours to look at
        return None


def process_alive(pid: int, started: float | None = None) -> bool:
    """Whether the process `pid` that started at `started` (if known) still runs on this host.
    A pid reused by a later process is told apart by its start time."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, unless the pid was reused
        pass
    if started is None:
        return True
    current = process_start(pid)
    return current is None or abs(current - started) < 1.0


class Catalog:
    """The project files of one data directory, safe to share between threads of one process."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._dbs: OrderedDict[Path, ProjectDB] = OrderedDict()
        self._pid = os.getpid()
        self._index = _Index(data_dir)
        self._found: dict[str, Path] = {}  # run or model id -> the file it was last found in
        self._broken_warned: set[Path] = set()
        self._drafts: list[str] = []  # the drafts the last listing of the directory showed
        self._changing = threading.local()  # .pending: inside `_own_change` (see there)

    # --- open files -----------------------------------------------------------------------------

    def db(self, path: Path, create: bool = False) -> ProjectDB:
        with self._lock:
            if os.getpid() != self._pid:  # a forked worker must not share its parent's handles
                self._dbs.clear()
                self._pid = os.getpid()
            db = self._dbs.get(path)
            if db is not None and not db.is_current():  # deleted, maybe made anew, meanwhile
                self._forget(path)
                db = None
            if db is None:
                with self._own_change():
                    db = ProjectDB(path, create=create)
                self._dbs[path] = db
                while len(self._dbs) > MAX_OPEN_FILES:
                    # Closed now unless another thread is inside it (then with its last use).
                    self._dbs.popitem(last=False)[1].release()
            self._dbs.move_to_end(path)
            return db

    def _forget(self, path: Path) -> None:
        with self._lock:
            db = self._dbs.pop(path, None)
        if db is not None:
            db.release()

    def _warn_skipping(self, path: Path, problem: str) -> None:
        if path not in self._broken_warned:
            self._broken_warned.add(path)
            _logger.warning("Skipping %s: %s", path, problem)

    # --- experiments ----------------------------------------------------------------------------

    def _look(self, path: Path, identity: str | None) -> tuple[ExperimentRow | None, str | None]:
        """The experiment in a file and why the file cannot be used, if it cannot."""
        if identity is not None:
            try:
                return self.experiment_in(self.db(path)), None
            except FileNotFoundError:
                pass
            except DatabaseError as e:
                return None, str(e)
        self._forget(path)  # gone: forget any connection still open to it
        return None, None

    def _read(
        self, path: Path, identity: str | None, version: int, strict: bool = False
    ) -> ExperimentRow | None:
        """The experiment in a file, read from the file, and recorded in the index (unless
        another process recorded files since `version`). A file that cannot be used is skipped
        with a warning, or (strict) raises its DatabaseError."""
        _, experiment, problem = self._look_and_record(path, identity, version)
        if problem:
            if strict:
                raise DatabaseError(problem)
            self._warn_skipping(path, problem)
        return experiment

    def _look_and_record(
        self, path: Path, identity: str | None, version: int,
        *also: tuple[str, list[tuple]],
    ) -> tuple[bool, ExperimentRow | None, str | None]:
        """`_look` at a file and record it, with the statements `also`, unless another process
        recorded files since `version`: whether it was written, the experiment, the problem."""
        experiment, problem = self._look(path, identity)
        written = self._index.write(
            *self._records([(path.name, identity, experiment, problem)]), *also, version=version
        )
        return written, experiment, problem

    @staticmethod
    def _needs_watching(identity: str, experiment: ExperimentRow | None, problem) -> bool:
        """Whether a file must be looked at (`stat`) at every look, not only when the directory
        changed: its identity is racy, it cannot be used (yet), or it is a Trackio project (whose
        last update time is that of the file, which Trackio's processes write)."""
        return identity == "racy" or problem is not None or experiment is None or experiment.native

    def _records(
        self, files: list[tuple[str, str | None, ExperimentRow | None, str | None]]
    ) -> tuple[tuple[str, list[tuple]], ...]:
        """The index statements that record what each (name, identity, experiment, problem)
        file held; a file whose identity is None is gone and forgotten. (A "racy" identity is
        recorded too: it never matches, so the file is read again.)"""
        rows, tags = [], []
        for name, identity, experiment, problem in files:
            if identity is None:
                continue
            columns = (None,) * 5 if experiment is None else (
                experiment.experiment_id, experiment.name, experiment.lifecycle_stage,
                experiment.creation_time, experiment.last_update_time,
            )
            rows.append((
                name, identity, self._needs_watching(identity, experiment, problem),
                experiment and _experiment_json(experiment), problem, *columns,
            ))
            tags += [(name, *tag) for tag in (experiment.tags.items() if experiment else ())]
        return (
            ("DELETE FROM files WHERE name = ?", [(n,) for n, now, *_ in files if now is None]),
            ("DELETE FROM experiment_tags WHERE name = ?", [(name,) for name, *_ in files]),
            ("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows),
            ("INSERT INTO experiment_tags VALUES (?, ?, ?)", tags),
        )

    def _current(
        self, name: str, identity: str, experiment: str | None, problem: str | None,
        version: int, strict: bool = False,
    ) -> ExperimentRow | None:
        """An index row's experiment if its file is unchanged, else the file's, read again."""
        path = self.data_dir / name
        now = _identity(path)
        if now is None or now == "racy" or now != identity:
            return self._read(path, now, version, strict)
        if problem:
            if strict:
                raise DatabaseError(problem)
            self._warn_skipping(path, problem)
        return None if experiment is None else _experiment_from_json(experiment)

    def _sync(self) -> None:
        """Bring the index up to date with the directory. If the directory's identity is still
        the one recorded when the index last matched it, no file was added, removed or replaced
        since, and every process records the changes it makes to a file's experiment
        (`changing`): only the files that need watching (see `_needs_watching`) or that a
        process is changing now are looked at. Else every project file is: those whose identity
        changed are read again, removed ones forgotten (also in a process whose index is in
        memory, which sees no other process's marks). Damaged files warn (once each)."""
        for _ in range(10):  # again if another process recorded files meanwhile
            failed_writes = self._index.failed_writes
            # (the index is opened before the directory is looked at)
            directory, version, recheck = self._index.listing()
            here = _directory_identity(self.data_dir)
            trusted = (
                here == directory and not self._index.in_memory
                and (recheck is None or time.time_ns() < recheck)
            )
            listed = None if trusted else set(self._list())
            recorded = {
                name: (identity, problem)
                for name, identity, problem in self._index.query(
                    "SELECT name, identity, problem FROM files"
                    + ("" if listed is not None else " WHERE watch")
                )
            }
            marks = self._index.query("SELECT mark, name, pid, started, host FROM changing")
            look = set(recorded) | {name for _, name, *_ in marks} if listed is None else listed
            files = []
            for name in sorted(look):
                identity, problem = recorded.get(name, ("", None))
                now = _identity(self.data_dir / name)
                if now is None or now == "racy" or now != identity:
                    files.append((name, now, *self._look(self.data_dir / name, now)))
                elif problem:
                    self._warn_skipping(self.data_dir / name, problem)
            gone = [] if listed is None else [(n,) for n in recorded if n not in listed]
            dead = [(mark,) for mark, name, pid, started, host in marks
                    if host == _host() and not process_alive(pid, started)]
            statements = self._records(files) + (
                ("DELETE FROM files WHERE name = ?", gone),
                ("DELETE FROM experiment_tags WHERE name = ?", gone),
                ("DELETE FROM changing WHERE mark = ?", dead),
            )
            if listed is not None:
                # A change in the same clock tick as the one the directory shows may not have
                # moved its mtime: such a directory is listed once more when the tick is over.
                changed_ns = int(here.split(":")[1])
                racy = time.time_ns() - changed_ns < _RACY_DIRECTORY_NS
                statements += ((
                    "UPDATE listing SET directory = ?, recheck = ?",
                    [(here, changed_ns + _RACY_DIRECTORY_NS if racy else None)],
                ),)
            if not (files or gone or dead or listed is not None):
                return
            if self._index.write(*statements, version=version):
                if listed is not None and getattr(self._changing, "pending", None) is not None:
                    self._changing.before = here  # inside `_own_change`: what it changes from
                for name, _, _, problem in files:
                    if problem:
                        self._warn_skipping(self.data_dir / name, problem)
                if self._index.failed_writes == failed_writes:
                    return

    def _list(self) -> list[str]:
        """The names of the directory's project files; drafts seen are kept for
        `_remove_dead_drafts`."""
        listing = os.listdir(self.data_dir)
        self._drafts = [n for n in listing if _DRAFT.fullmatch(n)]
        return [n for n in listing if n.endswith(".db") and n[0] != "."]

    def experiments(self) -> list[tuple[Path, ExperimentRow]]:
        """Every experiment of the directory with its file, in file-name order; damaged files are
        skipped (with one warning each) so the others still list. Only files that changed since
        the index last read them are opened."""
        return self.search_experiments()

    def search_experiments(
        self, where: str = "", args: Sequence[Any] = ()
    ) -> list[tuple[Path, ExperimentRow]]:
        """The experiments whose index row matches `where` (SQL over the columns of `files`;
        `experiment_tags` by file `name`), in file-name order, after bringing the index up to
        date: only the matching rows' experiments are decoded.

        >>> catalog.search_experiments("experiment_name LIKE ?", ["exp-%"])  # doctest: +SKIP
        """
        self._sync()
        return [
            (self.data_dir / name, _experiment_from_json(experiment))
            for name, experiment in self._index.query(
                "SELECT name, experiment FROM files WHERE experiment IS NOT NULL"
                f"{f' AND ({where})' if where else ''} ORDER BY name",
                tuple(args),
            )
        ]

    def first_creation_ms(self, synced: bool = False) -> int | None:
        """The earliest creation time among the directory's experiments (0 for one without),
        or None if there are none (`synced`: as `experiment_ids`)."""
        if not synced:
            self._sync()
        rows = self._index.query(
            "SELECT min(coalesce(nullif(creation_time, 0), 1) - 1) FROM files "
            "WHERE experiment IS NOT NULL"
        )
        return None if not rows or rows[0][0] is None else rows[0][0] + 1

    def largest_experiment_id(self, synced: bool = False) -> int:
        """The largest sequential id among the directory's readable experiments, 0 if none; the
        ids derived for Trackio's own projects (`_native`) are not counted (`synced`: as the
        directory was looked at just now, in this call)."""
        if not synced:
            self._sync()
        rows = self._index.query(
            "SELECT max(CAST(experiment_id AS INTEGER)) FROM files "
            "WHERE CAST(experiment_id AS INTEGER) < ?", (NATIVE_ID_BASE,)
        )
        return rows[0][0] or 0 if rows else 0

    def _find(self, field: str, value: str) -> tuple[Path, ExperimentRow] | None:
        """The experiment whose `field` ("experiment_id" or "name") is `value`: where the index
        says, checked; else after bringing the index up to date."""
        column = "experiment_id" if field == "experiment_id" else "experiment_name"
        sql = f"SELECT {_ROW_COLUMNS} FROM files WHERE {column} = ?"
        for synced in (False, True):
            if synced:
                self._sync()
            for row in self._index.query(sql, (value,)):
                current = self._current(*row)
                if current is not None and getattr(current, field) == value:
                    return self.data_dir / row[0], current
        return None

    def find_experiment(self, experiment_id: str) -> tuple[ProjectDB, ExperimentRow] | None:
        found = self._find("experiment_id", experiment_id)
        return None if found is None else (self.db(found[0]), found[1])

    def find_experiment_by_name(self, name: str) -> ExperimentRow | None:
        # The file named after the experiment is its likely home: a damaged one is an error here,
        # as it would be when creating the experiment. A rename can move the name elsewhere.
        likely = f"{project_stem(name)}.db"
        if (self.data_dir / likely).exists():
            recorded = self._index.query(
                f"SELECT {_ROW_COLUMNS} FROM files WHERE name = ?", (likely,)
            )
            row = recorded[0] if recorded else (likely, "", None, None, self._index.listing()[1])
            try:
                experiment = self._current(*row, strict=True)
            except DatabaseError:
                # Trackio may be making it just now (an empty file, tables without a version):
                # once its writer lets go of the project lock, the file is whole or damaged.
                if not _wait_for_trackio(self.data_dir / likely):
                    raise
                experiment = self._current(
                    likely, "", None, None, self._index.listing()[1], strict=True
                )
            if experiment is not None and experiment.name == name:
                return experiment
        found = self._find("name", name)
        return None if found is None else found[1]

    @staticmethod
    def experiment_in(db: ProjectDB) -> ExperimentRow | None:
        """The file's experiment: MLflow's, else that of a Trackio project (see `_native`)."""
        return db.experiment() or _native.experiment(db)

    def refresh(self, path: Path, mark: str | None = None) -> None:
        """Record a file's experiment as it is now (and drop this process's `mark`), read again
        if another process recorded files meanwhile."""
        dropped = ("DELETE FROM changing WHERE mark = ?", [(mark,)] if mark else [])
        for _ in range(10):
            _, version, _ = self._index.listing()
            if self._look_and_record(path, _identity(path), version, dropped)[0]:
                return

    @contextmanager
    def changing(self, path: Path) -> Iterator[None]:
        """Around a write that changes the experiment in `path` (its name, tags or stage):
        other processes look at the file itself until its new state is recorded here, or, if
        this process dies first, until a look finds it gone."""
        mark = uuid.uuid4().hex
        self._index.write((
            "INSERT INTO changing VALUES (?, ?, ?, ?, ?)",
            [(mark, path.name, os.getpid(), process_start(os.getpid()), _host())],
        ))
        try:
            yield
        finally:
            self.refresh(path, mark)
            if self._index.in_memory:  # no mark for others to see: the directory tells them
                with suppress(OSError):
                    os.utime(self.data_dir)

    @contextmanager
    def _own_change(self) -> Iterator[None]:
        """Around a change this process makes to the directory's entries (a new file; the -wal
        and -shm SQLite makes beside a file it opens): if the index matched the directory
        before, it matches it after, without listing it again. What another program adds,
        removes or replaces in the directory during the change is listed at the directory's
        next change."""
        if getattr(self._changing, "pending", None) is not None:  # inside another: that one
            yield
            return
        self._index.listing()  # opened first: its own -wal and -shm are not this change
        # `before`: the directory's identity, or a listing's during the change (see `_sync`)
        self._changing.before = _directory_identity(self.data_dir)
        self._changing.pending = []  # index statements written with the new identity
        try:
            yield
        finally:
            pending, self._changing.pending = self._changing.pending, None
            after, before = _directory_identity(self.data_dir), self._changing.before
            moved = [(after, before)] if after != before else []
            self._index.write(*pending, (_MOVE_ALONG_SQL, moved))

    def _write_with_change(self, *statements: tuple[str, list[tuple]]) -> None:
        """Write index statements with this thread's `_own_change` (one transaction), or now."""
        pending = getattr(self._changing, "pending", None)
        if pending is None:
            self._index.write(*statements)
        else:
            pending.extend(statements)

    @contextmanager
    def directory_lock(self) -> Iterator[None]:
        """Serialises experiment creation across processes; what this process adds to the
        directory meanwhile (files, ids) is its own change (`_own_change`)."""
        path = self.data_dir / ".mytracker.lock"
        # A read-only directory cannot even make the lock file: only reading works there.
        with file_lock(path, lambda e: _cannot_write(path, e)), self._own_change():
            yield

    def new_experiment_id(self, synced: bool = False) -> str:
        """The id of a new experiment, under the directory lock: one more than any id handed out
        before. A file that cannot be read now (damaged, moved away for a while) still holds its
        id, so the largest id ever handed out is kept in `.mytracker.ids` beside the files (by
        `create_experiment_file`, once the file is in place); it only grows, and a missing one
        is rebuilt from the files. The ids derived for Trackio's own projects (`_native`) lie
        beyond every sequential id and are not counted."""
        try:
            handed_out = int((self.data_dir / _ID_MARK).read_text())
        except FileNotFoundError:
            handed_out = 0
        except (OSError, ValueError) as e:
            _logger.warning("Rebuilding %s from the project files: %s", _ID_MARK, e)
            handed_out = 0
        return str(1 + max(handed_out, self.largest_experiment_id(synced)))

    def _hand_out(self, experiment_id: str) -> None:
        """Keep `experiment_id` in `.mytracker.ids` as the largest handed out (see
        `new_experiment_id`): written in place, 21 bytes at the file's start and no change to
        the directory; a mark this process may not write (another user's) is replaced. If
        neither works the experiment is made all the same: the mark only matters for ids whose
        file cannot be read later."""
        mark, text = self.data_dir / _ID_MARK, f"{experiment_id:>20}\n"
        try:
            fd = os.open(mark, os.O_WRONLY)
            try:
                os.pwrite(fd, text.encode(), 0)
            finally:
                os.close(fd)
            return
        except OSError:  # none yet, or another user's
            pass
        draft = mark.with_name(f"{mark.name}.{os.getpid()}")
        try:
            draft.write_text(text)
            share_with_group(draft)
            os.replace(draft, mark)
        except OSError as e:
            with suppress(OSError):  # on a read-only file system even this fails
                draft.unlink(missing_ok=True)
            _logger.warning("Cannot keep the largest experiment id in %s: %s", mark, e)

    def _project_paths(self, name: str) -> Iterator[Path]:
        """The files a new experiment may get, in order: the Trackio project of the same name,
        then numbered ones, so names that Trackio would reduce alike never share a file."""
        stem = project_stem(name)
        yield self.data_dir / f"{stem}.db"
        for n in range(2, 10_000):
            yield self.data_dir / f"{stem}-{n}.db"
        raise DatabaseError(f"No free project file for experiment {name!r}")

    def _adoptable(self, path: Path, name: str) -> bool:
        """Whether `path` is a plain Trackio project named exactly `name`: the new experiment
        is made in it, and its runs become the experiment's."""
        if path.stem != name:
            return False
        try:
            return self.db(path).experiment() is None
        except (DatabaseError, FileNotFoundError):
            return False

    def create_experiment_file(
        self,
        experiment_id: str,
        name: str,
        artifact_location: str | None,
        artifact_root: str | None,
        created_ms: int,
        tags: dict[str, str],
    ) -> None:
        """Make the project file of a new experiment, under the directory lock. Its artifact
        location is `artifact_location`, else `<artifact_root>/<id>`, else where Trackio's Files
        view lists it.

        Trackio makes the same file under its `<project>.lock` (when it first flushes), so each
        candidate file is looked at and placed under that lock: a file Trackio made first is
        adopted if it is the project of this very name, else the next name is tried; a new file
        is linked into place, which fails rather than replace one that appeared anyway. A name
        whose -wal or -shm is left (its file deleted while a process still has it open) is not
        free: a new file there would read the old file's pages from them."""
        from mlflow.utils.uri import append_to_uri_path

        self._remove_dead_drafts()
        for path in self._project_paths(name):
            if _occupied(path) and path.stem != name:
                continue
            location = artifact_location or (
                append_to_uri_path(artifact_root, experiment_id)
                if artifact_root
                else _dashboard.default_artifact_location(path)
            )
            fields = (experiment_id, name, location, created_ms, tags)
            try:  # the draft first: a full disk fails before anything is placed or locked
                with self._draft(path, fields) as (draft, made), _native.trackio_lock(path):
                    if not _occupied(path):
                        if not _link_into_place(draft, path):  # a file appeared meanwhile
                            continue
                    elif self._adoptable(path, name):
                        made = None
                        self.db(path).create_experiment(*fields)
                    else:
                        continue
            except OSError as e:
                raise _cannot_write(path, e) from e
            if experiment_id != "0":  # the default experiment's id is not handed out
                self._hand_out(experiment_id)
            if made is not None and _identity(path) == made:  # as written: no need to read it
                experiment = ExperimentRow(
                    experiment_id, name, location, "active", created_ms, created_ms, tags
                )
                self._write_with_change(*self._records([(path.name, made, experiment, None)]))
            else:
                self.refresh(path)
            return

    @contextmanager
    def _draft(self, path: Path, fields: tuple) -> Iterator[tuple[Path, str]]:
        """The experiment's file made whole under a name no reader lists, and its identity;
        whatever is left of it is removed afterwards (linked into place, it stays there)."""
        draft = path.with_name(f".{path.name}.{os.getpid()}.{_host()}.draft")
        try:
            made = _make_draft(draft, fields)
            share_with_group(draft)  # the project's -wal and -shm are made with its mode
            yield draft, made
        finally:  # e.g. a full disk: leave nothing behind
            for leftover in (draft, Path(f"{draft}-wal"), Path(f"{draft}-shm")):
                leftover.unlink(missing_ok=True)

    def _remove_dead_drafts(self) -> None:
        """Delete the drafts of processes killed while creating an experiment (a draft is
        renamed into place or deleted by a process that lives), among those the directory's last
        listing in this process showed (a draft's making changes the directory, so the next look
        lists it). Only drafts made on this host
        by a process that is gone: another process's draft, or one from another host sharing
        the directory, is never touched."""
        host = _host()
        for path in [self.data_dir / name for name in self._drafts]:
            match = _DRAFT.fullmatch(path.name)
            if match and match[2] in (None, host) and not process_alive(int(match[1])):
                _logger.info("Removing %s, left by a process killed while creating it", path)
                path.unlink(missing_ok=True)

    # --- runs and logged models -------------------------------------------------------------

    def locate_run(self, run_id: str, rescan: bool) -> ProjectDB | None:
        """The file that holds the run: where the index says, or (rescan) after reading the ids
        of every file changed since its ids were last read."""
        return self._locate(run_id, rescan)

    def locate_model(self, model_id: str, rescan: bool) -> ProjectDB | None:
        """The file that holds the logged model, found as `locate_run` finds a run."""
        return self._locate(model_id, rescan)

    def remember_run(self, run_id: str, path: Path) -> None:
        self._found[run_id] = path
        self._index.write(("INSERT OR REPLACE INTO ids VALUES (?, ?)", [(run_id, path.name)]))

    remember_model = remember_run

    def _locate(self, entity_id: str, rescan: bool) -> ProjectDB | None:
        # Where this process last found it, without a query (a training loop logs to one run a
        # call): callers check the file holds it and ask again with `rescan` if not.
        path = None if rescan else self._found.get(entity_id)
        if path is None:
            if rescan:
                self._read_changed_ids()
            names = self._index.query("SELECT name FROM ids WHERE id = ?", (entity_id,))
            if not names:
                return None if rescan else self._locate(entity_id, rescan=True)
            path = self.data_dir / names[0][0]
        try:
            db = self.db(path)
        except (DatabaseError, FileNotFoundError):
            return None if rescan else self._locate(entity_id, rescan=True)
        if len(self._found) >= 100_000:  # a long-lived server: stay bounded
            self._found.clear()
        self._found[entity_id] = path
        return db

    def _read_changed_ids(self) -> None:
        read = dict(self._index.query("SELECT name, identity FROM ids_read"))
        for path in sorted(self.data_dir.glob("*.db")):
            identity = _identity(path)
            if identity is None or (identity != "racy" and read.get(path.name) == identity):
                continue
            try:
                ids = self.db(path).entity_ids()
            except (DatabaseError, FileNotFoundError):
                continue
            self._index.write(
                ("INSERT OR REPLACE INTO ids VALUES (?, ?)", [(i, path.name) for i in ids]),
                (
                    "INSERT OR REPLACE INTO ids_read VALUES (?, ?)",
                    [(path.name, identity)] if identity != "racy" else [],
                ),
            )
