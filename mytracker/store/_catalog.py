"""Which file holds what: the data directory's project files, opened and located.

Every experiment is one Trackio project file, ``<dir>/<project>.db``; the files are the only
source of truth. The catalog keeps a bounded cache of open files and remembers where it last
found an experiment or a run, checking the file again before it trusts the memory, so another
process's changes are never hidden. It also creates new project files safely.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from mytracker.store import _dashboard
from mytracker.store._db import DatabaseError, ExperimentRow, ProjectDB
from mytracker.store._trackio import project_stem

_logger = logging.getLogger(__name__)

MAX_OPEN_FILES = 64

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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


class Catalog:
    """The project files of one data directory, safe to share between threads of one process."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._dbs: OrderedDict[Path, ProjectDB] = OrderedDict()
        self._pid = os.getpid()
        self._run_paths: dict[str, Path] = {}
        self._experiment_paths: dict[str, Path] = {}
        self._broken_warned: set[Path] = set()

    # --- open files -----------------------------------------------------------------------------

    def db(self, path: Path, create: bool = False) -> ProjectDB:
        with self._lock:
            if os.getpid() != self._pid:  # a forked worker must not share its parent's handles
                self._dbs.clear()
                self._pid = os.getpid()
            db = self._dbs.get(path)
            if db is None:
                db = ProjectDB(path, create=create)
                self._dbs[path] = db
                while len(self._dbs) > MAX_OPEN_FILES:
                    # Not closed here: a thread may still hold it; it closes when released.
                    self._dbs.popitem(last=False)
            self._dbs.move_to_end(path)
            return db

    def _project_dbs(self) -> Iterator[ProjectDB]:
        """Every readable project database in the data directory, in name order."""
        for path in sorted(self.data_dir.glob("*.db")):
            try:
                yield self.db(path)
            except (DatabaseError, FileNotFoundError) as e:
                self._warn_skipping(path, e)

    def _warn_skipping(self, path: Path, error: Exception) -> None:
        if path not in self._broken_warned:
            self._broken_warned.add(path)
            _logger.warning("Skipping %s: %s", path, error)

    # --- experiments ----------------------------------------------------------------------------

    def experiments(self) -> list[tuple[ProjectDB, ExperimentRow]]:
        """Every experiment of the directory, with its file; damaged files are skipped (with one
        warning each) so the others still list."""
        found = []
        for db in self._project_dbs():
            try:
                experiment = db.experiment()
            except DatabaseError as e:
                self._warn_skipping(db.path, e)
                continue
            if experiment is not None:
                self._experiment_paths[experiment.experiment_id] = db.path
                found.append((db, experiment))
        return found

    def find_experiment(self, experiment_id: str) -> tuple[ProjectDB, ExperimentRow] | None:
        path = self._experiment_paths.get(experiment_id)
        if path is not None and path.exists():
            db = self.db(path)
            experiment = db.experiment()
            if experiment is not None and experiment.experiment_id == experiment_id:
                return db, experiment
        for db, experiment in self.experiments():
            if experiment.experiment_id == experiment_id:
                return db, experiment
        return None

    def find_experiment_by_name(self, name: str) -> ExperimentRow | None:
        # The file named after the experiment is the likely home; a rename can move the name.
        path = self.data_dir / f"{project_stem(name)}.db"
        if path.exists():
            experiment = self.db(path).experiment()
            if experiment is not None and experiment.name == name:
                return experiment
        for _, experiment in self.experiments():
            if experiment.name == name:
                return experiment
        return None

    @contextmanager
    def directory_lock(self) -> Iterator[None]:
        """Serialises experiment creation across processes."""
        path = self.data_dir / ".mytracker.lock"
        try:
            # Read-only is enough to lock, so another user can lock a file this one made.
            handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT, 0o666))
        except OSError as e:  # e.g. a read-only directory: only reading works there
            raise _cannot_write(path, e) from e
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def new_experiment_id(self, experiments: list[tuple[ProjectDB, ExperimentRow]]) -> str:
        """The id of a new experiment, under the directory lock: one more than any id handed out
        before. A file that cannot be read now (damaged, moved away for a while) still holds its
        id, so the largest id ever handed out is kept in `.mytracker.ids` beside the files; it
        only grows, and a missing one is rebuilt from the files."""
        mark = self.data_dir / ".mytracker.ids"
        try:
            handed_out = int(mark.read_text())
        except FileNotFoundError:
            handed_out = 0
        except (OSError, ValueError) as e:
            _logger.warning("Rebuilding %s from the project files: %s", mark, e)
            handed_out = 0
        new_id = 1 + max([handed_out, *(int(e.experiment_id) for _, e in experiments)])
        draft = mark.with_name(f"{mark.name}.{os.getpid()}")
        try:
            draft.write_text(f"{new_id}\n")
            os.replace(draft, mark)  # whole or not at all: a torn mark could go backwards
        except OSError as e:
            with suppress(OSError):  # on a read-only file system even this fails
                draft.unlink(missing_ok=True)
            raise _cannot_write(mark, e) from e
        return str(new_id)

    def _new_project_path(self, name: str) -> Path:
        """A file for a new experiment: the Trackio project of the same name when that is free
        (or an existing plain Trackio project whose name is exactly this), else a numbered one, so
        names that Trackio would reduce alike never share a file."""
        stem = project_stem(name)
        candidates = [stem] + [f"{stem}-{n}" for n in range(2, 10_000)]
        for candidate in candidates:
            path = self.data_dir / f"{candidate}.db"
            if not path.exists():
                return path
            if candidate == name:
                try:
                    if self.db(path).experiment() is None:
                        return path  # adopt the Trackio project of that very name
                except DatabaseError:
                    pass
        raise DatabaseError(f"No free project file for experiment {name!r}")

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
        view lists it."""
        from mlflow.utils.uri import append_to_uri_path

        path = self._new_project_path(name)
        location = artifact_location or (
            append_to_uri_path(artifact_root, experiment_id)
            if artifact_root
            else _dashboard.default_artifact_location(path)
        )
        fields = (experiment_id, name, location, created_ms, tags)
        try:
            if path.exists():  # a plain Trackio project of this very name: adopt it in place
                self.db(path).create_experiment(*fields)
            else:
                # Made whole under a name no reader lists, then renamed into place, so another
                # process never opens a half-made project.
                self._remove_dead_drafts()
                draft = path.with_name(f".{path.name}.{os.getpid()}.{_host()}.draft")
                try:
                    draft_db = ProjectDB(draft, create=True)
                    try:
                        draft_db.create_experiment(*fields)
                    finally:
                        draft_db.close()
                    os.replace(draft, path)
                except BaseException:  # e.g. a full disk: leave nothing behind
                    for leftover in (draft, Path(f"{draft}-wal"), Path(f"{draft}-shm")):
                        leftover.unlink(missing_ok=True)
                    raise
        except OSError as e:
            raise _cannot_write(path, e) from e
        self._experiment_paths[experiment_id] = path

    def _remove_dead_drafts(self) -> None:
        """Delete the drafts of processes killed while creating an experiment (a draft is
        renamed into place or deleted by a process that lives). Only drafts made on this host
        by a process that is gone: another process's draft, or one from another host sharing
        the directory, is never touched."""
        host = _host()
        for path in self.data_dir.glob(".*.draft*"):
            match = _DRAFT.fullmatch(path.name)
            if match and match[2] in (None, host) and not _pid_alive(int(match[1])):
                _logger.info("Removing %s, left by a process killed while creating it", path)
                path.unlink(missing_ok=True)

    # --- runs -----------------------------------------------------------------------------------

    def locate_run(self, run_id: str, rescan: bool) -> ProjectDB | None:
        """The file that holds the run: where it was last seen, or (rescan) wherever it is now."""
        path = None if rescan else self._run_paths.get(run_id)
        if path is not None:
            return self.db(path)
        for db in self._project_dbs():
            if db.has_run(run_id):
                self._run_paths[run_id] = db.path
                return db
        return None

    def remember_run(self, run_id: str, path: Path) -> None:
        self._run_paths[run_id] = path
