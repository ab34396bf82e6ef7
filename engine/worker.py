"""The worker: fire due timers, start scheduled instances and escalate overdue tasks until told to stop.

:func:`run` does a pass (:func:`engine.timers.fire_due`) every ``poll`` seconds and logs what each
did. Stopping is cooperative: SIGINT and SIGTERM only set a flag, which is checked between
transactions, so the transaction under way always commits (or rolls back) whole before the
worker exits. The time of each pass comes from ``clock``: the engine itself never reads it.
"""

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime

from . import timers
from .store import Database

log = logging.getLogger("qproc.worker")


def stop_on_signals(stop: threading.Event) -> None:
    """Make SIGINT and SIGTERM set ``stop`` instead of interrupting whatever runs."""
    def handle(signum, _frame):
        log.info("received %s: finishing the current transaction, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def run(db: Database, clock: Callable[[], datetime], stop: threading.Event, poll: float,
        batch: int = timers.BATCH) -> int:
    """Do passes every ``poll`` seconds until ``stop`` is set; return how many passes ran.

    A pass that fails unexpectedly is logged with its traceback and the worker carries on at the
    next poll: one broken instance must not stop the others' timers.
    """
    log.info("worker started: polling every %gs, batches of %d", poll, batch)
    passes = 0
    while not stop.is_set():
        now = clock()
        try:
            firings = timers.fire_due(db, now, batch, stop=stop.is_set)
        except Exception:  # noqa: BLE001 — logged, and the next pass tries again
            log.exception("pass at %s failed", now.isoformat())
        else:
            for firing in firings:
                log.info("%s %s", now.isoformat(timespec="seconds"), firing.detail)
        passes += 1
        stop.wait(poll)
    log.info("worker stopped after %d passes", passes)
    return passes
