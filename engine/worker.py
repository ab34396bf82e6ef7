"""The worker: fire due timers, start scheduled instances and escalate overdue tasks until told to stop.

:func:`run` does a pass (:func:`engine.timers.fire_due`) every ``poll`` seconds and logs what each
did. Stopping is cooperative: SIGINT and SIGTERM only set a flag, which is checked between
transactions, so the transaction under way always commits (or rolls back) whole before the
worker exits. The time of each pass comes from ``clock``: the engine itself never reads it.
While the database is unreachable the worker keeps trying, waiting twice as long after each
failed pass (up to ``MAX_BACKOFF`` seconds) so a restarting server is not hammered.
"""

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime

from . import timers
from .errors import DatabaseUnavailable
from .store import Database

log = logging.getLogger("qproc.worker")
MAX_BACKOFF = 60.0


def stop_on_signals(stop: threading.Event) -> None:
    """Make SIGINT and SIGTERM set ``stop`` instead of interrupting whatever runs."""
    def handle(signum, _frame):
        log.info("received %s: finishing the current transaction, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def backoff(poll: float, failures: int) -> float:
    """Seconds to wait after ``failures`` passes in a row found the database unavailable: 1, 2, 4 … (at least
    ``poll``, at most MAX_BACKOFF)."""
    return min(MAX_BACKOFF, max(poll, 1.0) * 2 ** (failures - 1))


def run(db: Database, clock: Callable[[], datetime], stop: threading.Event, poll: float,
        batch: int = timers.BATCH) -> int:
    """Do passes every ``poll`` seconds until ``stop`` is set; return how many passes ran.

    A pass that fails unexpectedly is logged with its traceback and the worker carries on at the
    next poll: one broken instance must not stop the others' timers. A pass that finds the database
    unavailable is logged in one line and retried with :func:`backoff`; the next pass reconnects.
    """
    log.info("worker started: polling every %gs, batches of %d", poll, batch)
    passes = failures = 0
    while not stop.is_set():
        now = clock()
        wait = poll
        try:
            firings = timers.fire_due(db, now, batch, stop=stop.is_set)
        except DatabaseUnavailable as err:
            failures += 1
            wait = backoff(poll, failures)
            log.warning("%s; trying again in %gs", err, wait)
        except Exception:  # noqa: BLE001 — logged, and the next pass tries again
            log.exception("pass at %s failed", now.isoformat())
        else:
            if failures:
                log.info("database reachable again after %d failed passes", failures)
            failures = 0
            for firing in firings:
                log.info("%s %s", now.isoformat(timespec="seconds"), firing.detail)
        passes += 1
        stop.wait(wait)
    log.info("worker stopped after %d passes", passes)
    return passes
