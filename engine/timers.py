"""Timers: one pass of the worker — claim the due work, hand each piece to the runtime, say what happened.

Due work is found with one indexed query per kind: instances whose ``next_due_at`` has passed
(a waiting timer or a task's next escalation step) and schedules whose next occurrence has (a
timer start event). Each batch is one transaction that claims its rows with ``SELECT … FOR UPDATE
SKIP LOCKED`` (on PostgreSQL; SQLite lets one writer in at a time), re-checks each claimed row,
does the work and moves the row's due time on before committing. So a timer fires once even when
two passes run at the same moment: the second finds the row locked or no longer due.

One instance's failure (say, a timer expression that raises) is rolled back on its own, logged in
the report and retried ``RETRY_AFTER`` later; the rest of the batch goes on.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from . import escalation, runtime, schedules, store
from .errors import EngineError
from .store import Database, InstanceRow, ScheduleRow

BATCH = 50
RETRY_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Firing:
    """One thing a pass did: ``kind`` is an event kind (or ``failed``), ``detail`` says what, for the log."""

    kind: str
    instance_id: int | None
    detail: str


@dataclass
class Batch:
    """What one transaction claimed and did."""

    claimed: int = 0
    firings: list[Firing] = field(default_factory=list)


def _start_scheduled(session: Session, schedule: ScheduleRow, now: datetime, limit: int, found: list[Firing]) -> None:
    due = schedules.due_occurrences(schedule, now, limit)
    for index, when in due:
        instance = runtime.start_scheduled(session, schedule, when, now)
        found.append(Firing("timer_fired", instance.id, f"timer '{schedule.event}' due {when.isoformat()} "
                                                        f"started instance {instance.id} of {schedule.process_key}"))
    schedules.advance(schedule, due[-1][0] + 1 if due else schedule.occurrence)


def _work_on(session: Session, instance: InstanceRow, now: datetime, found: list[Firing]) -> None:
    if instance.timer_due_at is not None and instance.timer_due_at < now:
        for fired in runtime.fire_timers(session, instance, now):
            found.append(Firing("timer_fired", instance.id, f"timer '{fired['timer']}' due {fired['due']} "
                                                            f"fired in instance {instance.id}"))
    for step in escalation.escalate_due(session, instance, now):
        what = f"notified {step.data['notified']}" if step.kind == "task_overdue_notified" else \
            f"escalated to {step.data['to']} (level {step.data['level']})"
        found.append(Firing(step.kind, instance.id, f"task {step.task_id} of instance {instance.id}: {what}"))
    runtime.reschedule(session, instance)


def _isolated(session: Session, row: InstanceRow | ScheduleRow, instance_id: int | None, label: str, now: datetime,
              batch: Batch, work: Callable[[list[Firing]], None]) -> None:
    """Do one claimed row's work in a savepoint: on failure only it is rolled back, and retried later."""
    found: list[Firing] = []
    try:
        with session.begin_nested():
            work(found)
    except EngineError as err:
        row.next_due_at = now + RETRY_AFTER
        batch.firings.append(Firing("failed", instance_id, f"{label}: {err}; retrying at {row.next_due_at.isoformat()}"))
    else:
        batch.firings.extend(found)


def fire_batch(session: Session, now: datetime, limit: int = BATCH) -> Batch:
    """Claim and do up to ``limit`` due schedules and ``limit`` due instances, in the caller's transaction."""
    batch = Batch()
    for schedule in store.claim_due_schedules(session, now, limit):
        batch.claimed += 1
        _isolated(session, schedule, None, f"timer start event of {schedule.process_key}", now, batch,
                  lambda found, s=schedule: _start_scheduled(session, s, now, limit, found))
    for instance in store.claim_due_instances(session, now, limit):
        batch.claimed += 1
        # Re-check the claimed row as it is now (locked, at its current revision): another pass may have
        # done this work between our query and our lock.
        if instance.next_due_at is None or instance.next_due_at >= now:
            continue
        _isolated(session, instance, instance.id, f"instance {instance.id}", now, batch,
                  lambda found, i=instance: _work_on(session, i, now, found))
    return batch


def fire_due(db: Database, now: datetime, limit: int = BATCH, stop: Callable[[], bool] = lambda: False) -> list[Firing]:
    """One pass: fire everything due before ``now``, one transaction per batch, until nothing due is left.

    ``stop`` is asked between batches (the worker's shutdown flag): the batch under way always finishes.
    """
    firings: list[Firing] = []
    while not stop():
        batch = db.run(lambda session: fire_batch(session, now, limit))
        firings.extend(batch.firings)
        if batch.claimed < limit:
            break
    return firings
