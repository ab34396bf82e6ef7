"""Workers in their own OS processes, for the concurrency and fault tests: they complete tasks or fire timers.

The test process forks each one (``Worker``), so it starts with the engine already imported instead of
paying a second of imports per process. The test's pooled connections are closed before the fork (a
child must not inherit an open SQLite or libpq connection) and the worker opens its own. A worker
reports one JSON line per thing it does: ``{"ready": NUMBER}`` once its database is open, then it waits
for a line from the test so that every worker starts at once; what its job did; ``"finished": NUMBER``
when it is done. With ``pause_at`` it reports ``{"inside": ...}`` in the middle of that transaction,
after its changes are written to the database but before the commit, and blocks there until killed.
"""

import json
import multiprocessing
import os
import traceback
from datetime import datetime, timedelta, timezone

from engine import runtime, store, timers
from engine.errors import ConcurrentUpdate, InvalidTransition
from engine.store import Database

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
FIRE_AT = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc) + timedelta(hours=5)  # boundary_timer's 4 h have passed
TIMER_BATCH = 10
QUALITY = ["mei.wang", "lei.liu", "fang.yang", "qiang.li"]


def _open(url: str, number: int, commands, report) -> Database:
    db = Database(url)
    db.run(lambda s: store.inbox(s, ["quality"], runtime.ACTIVE_TASK, limit=1))
    report(ready=number)
    commands.readline()
    return db


def complete_checks(url: str, number: int, pause_at: int | None, commands, report) -> None:
    """Complete parallel_checks' quality checks until none is open, one transaction each.

    Reports ``{"completed": TASK, "instance": ID, "revision": R, "events": N, "attempts": A}`` per
    committed completion and ``{"refused": TASK, "error": ...}`` per refused one (done by someone else,
    or too many collisions: it is tried again on the next pass). Each pass takes one open check: workers
    0 and 1 work on the oldest instance with open checks, 2 and 3 on the next, each pair on different
    checks of the same instance (worker k starts at check a, b, c, a …), and on the same check when only
    one is left. It writes its number into the check's field, so the final data shows who did each.
    """
    db = _open(url, number, commands, report)
    actor = QUALITY[number % len(QUALITY)]
    done = 0
    while True:
        pending = db.run(lambda s: [(t.instance_id, t.name, t.id)
                                    for t in store.inbox(s, ["quality"], runtime.ACTIVE_TASK, limit=12)])
        if not pending:
            break
        instances = sorted({instance_id for instance_id, _, _ in pending})
        target = instances[min(number // 2, len(instances) - 1)]
        _, name, task_id = min((t for t in pending if t[0] == target),
                               key=lambda t: (ord(t[1][-1]) - ord("a") + number) % 3)
        attempts = 0

        def complete(session):
            nonlocal attempts
            attempts += 1
            task = runtime.complete(session, task_id, actor, NOW, {name[-1]: number})
            if done + 1 == pause_at:
                session.flush()
                report(inside=task_id)
                commands.readline()  # the test kills this process here, mid-transaction
            return task.instance

        try:
            instance = db.run(complete)
        except (InvalidTransition, ConcurrentUpdate) as err:
            report(refused=task_id, error=str(err))
            continue
        done += 1
        report(completed=task_id, instance=instance.id, revision=instance.revision, events=instance.last_seq,
               attempts=attempts)
    report(finished=number)


def fire_timers(url: str, number: int, pause_at: int | None, commands, report) -> None:
    """Fire every timer due at FIRE_AT, as ``qproc timers fire`` does, in batches of TIMER_BATCH instances.

    Reports ``{"fired": [INSTANCE, ...], "finished": NUMBER}``: the instances whose timer this process fired.
    """
    db = _open(url, number, commands, report)
    if pause_at:
        fire_batch, batches = timers.fire_batch, 0

        def fire_batch_then_pause(session, now, limit):
            nonlocal batches
            batches += 1
            batch = fire_batch(session, now, limit)
            if batches == pause_at:
                session.flush()
                report(inside=[f.instance_id for f in batch.firings])
                commands.readline()  # the test kills this process here, mid-transaction
            return batch

        timers.fire_batch = fire_batch_then_pause  # in this forked process only
    firings = timers.fire_due(db, FIRE_AT, limit=TIMER_BATCH)
    report(fired=[f.instance_id for f in firings if f.kind == "timer_fired"], finished=number)


def _child(job, url: str, number: int, pause_at: int | None, commands_fd: int, reports_fd: int,
           others: list[int]) -> None:
    for fd in others:  # the test's ends of the pipes: holding them would hide the test closing them
        os.close(fd)

    def report(**fields) -> None:
        os.write(reports_fd, (json.dumps(fields) + "\n").encode())

    try:
        job(url, number, pause_at, os.fdopen(commands_fd), report)
    except BaseException:
        report(crashed=traceback.format_exc())
        raise


class Worker:
    """The test's side of one worker process: start it, read what it reports, let it go, kill it."""

    def __init__(self, db: Database, number: int, job=complete_checks, pause_at: int | None = None):
        db.dispose()
        commands_in, commands_out = os.pipe()
        reports_in, reports_out = os.pipe()
        self.number = number
        self.process = multiprocessing.get_context("fork").Process(
            target=_child, args=(job, db.url, number, pause_at, commands_in, reports_out, [commands_out, reports_in]))
        self.process.start()
        os.close(commands_in)
        os.close(reports_out)
        self._commands = os.fdopen(commands_out, "w")
        self._reports = os.fdopen(reports_in)

    def read(self) -> dict:
        """The next line the worker reports; fails with its traceback if it crashed or died instead."""
        line = self._reports.readline()
        report = json.loads(line) if line else {"crashed": f"worker {self.number} died without a word"}
        assert "crashed" not in report, report["crashed"]
        return report

    def go(self) -> None:
        """Release the worker from its start line."""
        self._commands.write("go\n")
        self._commands.flush()

    def finish(self) -> list[dict]:
        """Everything the worker reports until it finishes; fails unless it exits cleanly."""
        reports = []
        while not reports or "finished" not in reports[-1]:
            reports.append(self.read())
        self.process.join(timeout=60)
        self._close()
        assert self.process.exitcode == 0, f"worker {self.number} exited {self.process.exitcode}"
        return reports

    def kill(self) -> None:
        """kill -9: no exception handler, no rollback, no goodbye to the database."""
        self.process.kill()
        self.process.join(timeout=60)
        self._close()

    def _close(self) -> None:
        self._commands.close()
        self._reports.close()
