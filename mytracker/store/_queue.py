"""Asynchronous logging owned by the store: ``log_batch_async`` appends to a buffer and one
writer thread writes what gathered, every ``INTERVAL_S``, in one transaction per run.

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
from concurrent.futures import Future
from typing import NamedTuple

_logger = logging.getLogger(__name__)

# How long points wait for company before they are written: what a SIGKILL can lose, plus the
# time of one write (docs/reliability.md promises at most 0.5 s in all).
INTERVAL_S = 0.01


class QueuedBatch(NamedTuple):
    run_id: str
    metrics: list
    params: list
    tags: list
    future: Future


class BatchQueue:
    """Batches waiting to be written, and the thread that writes them.

    `write(batches)` gets the batches in the order they were logged and must settle each
    one's future (result or exception). `flush()` writes everything logged before it, in the
    calling thread, and returns when it is written; it and the writer thread never write at the
    same time, so batches land in order.
    """

    def __init__(self, write: Callable[[list[QueuedBatch]], None]):
        self._write = write
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._pending: list[QueuedBatch] = []
        self._lock = threading.Lock()  # guards _pending
        self._write_lock = threading.Lock()  # one writer at a time: the thread or a flush
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def append(self, run_id: str, metrics: list, params: list, tags: list) -> Future:
        if self._pid != os.getpid():  # a forked child: its parent's thread does not exist here
            self._reset()
        future: Future = Future()
        with self._lock:
            self._pending.append(QueuedBatch(run_id, metrics, params, tags, future))
            if len(self._pending) == 1:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="mytracker-trackio-writer", daemon=True
                    )
                    self._thread.start()
                self._ready.set()
        return future

    def flush(self) -> None:
        """Write everything appended so far, before returning."""
        if self._pid != os.getpid():
            self._reset()
        with self._write_lock:
            self._write_pending()

    def _write_pending(self) -> None:
        with self._lock:
            batches, self._pending = self._pending, []
            self._ready.clear()
        if batches:
            try:
                self._write(batches)
            except Exception as e:  # `write` settles futures itself; this is a bug in it
                _logger.exception("Failed to write %d queued batches", len(batches))
                for batch in batches:
                    if not batch.future.done():
                        batch.future.set_exception(e)

    def _run(self) -> None:
        while True:
            self._ready.wait()
            # Let a few more steps arrive, then write them together.
            time.sleep(INTERVAL_S)
            with self._write_lock:
                self._write_pending()
