"""Asynchronous logging owned by the store: ``log_batch_async`` appends to a buffer and one
writer thread writes what gathered, every ``INTERVAL_S``, in one transaction per run.

What waits in the buffer outlives the call that queued it, and Python's cyclic garbage collector
scans every object that survives its young generations again in each full collection (with
MLflow imported, hundreds of thousands of objects): so a queued batch holds as few objects as
it can: the caller's handle (a ``BatchResult`` in MLflow's ``RunOperations``) is not kept, and
the batches gathered together share one ``_Gathered``.

MLflow's own queue (``AbstractStore._async_logging_queue``) hands every call to a pool of ten
threads and a second pool of ten that waits for each: more work per call than the store's
synchronous ``log_batch``. Here a call costs a list append and a future; the points reach the
file at most ``INTERVAL_S`` (plus one write) later, or at once on ``flush()``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

_logger = logging.getLogger(__name__)

# How long points wait for company before they are written: what a SIGKILL can lose, plus the
# time of one write (docs/reliability.md promises at most 0.5 s in all).
INTERVAL_S = 0.01


class _Gathered:
    """The batches written together: whether they are written, and which of them failed."""

    __slots__ = ("written", "errors")

    def __init__(self) -> None:
        self.written = threading.Event()
        self.errors: dict[int, BaseException] = {}


class BatchResult:
    """One queued batch's outcome, as MLflow's ``RunOperations.wait()`` asks a future for it:
    ``result()`` returns once the batch is written and raises what stopped it."""

    __slots__ = ("_gathered", "_index")

    def __init__(self, gathered: _Gathered, index: int):
        self._gathered, self._index = gathered, index

    def done(self) -> bool:
        return self._gathered.written.is_set()

    def result(self, timeout: float | None = None) -> None:
        if not self._gathered.written.wait(timeout):
            raise TimeoutError("the queued batch is not written yet")
        error = self._gathered.errors.get(self._index)
        if error is not None:
            raise error


class QueuedBatch(NamedTuple):
    run_id: str
    metrics: list
    params: list
    tags: list
    gathered: _Gathered
    index: int

    def fail(self, error: BaseException) -> None:
        """What its caller's ``result()`` raises."""
        self.gathered.errors[self.index] = error


class BatchQueue:
    """Batches waiting to be written, and the thread that writes them.

    `write(batches)` gets the batches in the order they were logged and calls `fail` on each
    that could not be written; when it returns, they are all settled. `flush()` writes everything logged before it, in the
    calling thread, and returns when it is written; it and the writer thread never write at the
    same time, so batches land in order.
    """

    def __init__(self, write: Callable[[list[QueuedBatch]], None]):
        self._write = write
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._pending: list[QueuedBatch] = []
        self._gathered = _Gathered()
        self._lock = threading.Lock()  # guards _pending and _gathered
        self._write_lock = threading.Lock()  # one writer at a time: the thread or a flush
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def append(self, run_id: str, metrics: list, params: list, tags: list) -> BatchResult:
        if self._pid != os.getpid():  # a forked child: its parent's thread does not exist here
            self._reset()
        with self._lock:
            index = len(self._pending)
            self._pending.append(QueuedBatch(run_id, metrics, params, tags, self._gathered, index))
            if index == 0:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="mytracker-trackio-writer", daemon=True
                    )
                    self._thread.start()
                self._ready.set()
            return BatchResult(self._gathered, index)

    def flush(self) -> None:
        """Write everything appended so far, before returning."""
        if self._pid != os.getpid():
            self._reset()
        with self._write_lock:
            self._write_pending()

    def _write_pending(self) -> None:
        with self._lock:
            batches, self._pending = self._pending, []
            gathered, self._gathered = self._gathered, _Gathered()
            self._ready.clear()
        if batches:
            try:
                self._write(batches)
            except Exception as e:  # `write` settles the batches itself; this is a bug in it
                _logger.exception("Failed to write %d queued batches", len(batches))
                for batch in batches:
                    gathered.errors.setdefault(batch.index, e)
            finally:
                gathered.written.set()

    def _run(self) -> None:
        while True:
            self._ready.wait()
            # Let a few more steps arrive, then write them together.
            time.sleep(INTERVAL_S)
            with self._write_lock:
                self._write_pending()
