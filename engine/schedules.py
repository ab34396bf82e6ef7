"""Schedules: the timer start events of deployed processes, and when each next starts an instance.

A timer start event means "start a new instance of this process at these times" — it belongs to
the deployed process, not to an instance. Deploying a process with one creates (or keeps) its
schedule; the worker starts one instance per occurrence as each falls due. The timer's
expression is evaluated once, at deploy, in the sandbox with the deploy time as ``now``:

- ``timeCycle`` ``"R/2026-01-05T09:00:00+08:00/P3M"``: every three months from that moment, for
  ever (``R4/…``: four times); ``"R/P3M"``: every three months from three months after deploy;
- ``timeDate`` ``"2027-01-04T09:00:00+08:00"``: once, at that moment;
- ``timeDuration`` ``"P30D"``: once, that long after deploy.

Redeploying with the same timer expression keeps the schedule's place in its sequence (the next
instance starts from the new version); a changed expression starts a new sequence from the
redeploy; a version without a timer start event removes the schedule.
"""

from datetime import datetime, timezone

from sqlalchemy.orm import Session

from . import store
from .calendars import (Duration, DurationError, Recurrence, add_calendar_time, parse_duration, parse_moment,
                        parse_recurrence)
from .definitions import Definition
from .errors import DefinitionError, EngineError
from .sandbox import SandboxEnvironment
from .store import DefinitionRow, ScheduleRow

_ENVIRONMENT = SandboxEnvironment()


def _recurrence(timer: dict, now: datetime) -> Recurrence:
    """Evaluate a start timer's expression at ``now`` into the occurrences it describes."""
    try:
        value = _ENVIRONMENT.evaluate(timer["expression"], {})
    except EngineError:
        raise
    except Exception as err:  # any failure of the process owner's expression is a deploy error
        raise DefinitionError(f"timer start event '{timer['event']}': {timer['expression']!r} failed: {err}") from None
    try:
        if timer["kind"] == "cycle":
            return parse_recurrence(str(value), now)
        if timer["kind"] == "duration":
            return Recurrence(repeat=1, start=add_calendar_time(now, parse_duration(str(value)), timezone.utc),
                              period=Duration())
        return Recurrence(repeat=1, start=parse_moment(str(value)), period=Duration())
    except DurationError as err:
        raise DefinitionError(f"timer start event '{timer['event']}': {err}") from None


def recurrence_of(schedule: ScheduleRow) -> Recurrence:
    """The occurrences a stored schedule describes."""
    return Recurrence(repeat=schedule.repeat, start=schedule.start, period=parse_duration(schedule.period))


def deploy(session: Session, row: DefinitionRow, definition: Definition, now: datetime) -> ScheduleRow | None:
    """Create, keep, replace or remove the schedule of a newly deployed version; call inside the command clock."""
    timer = definition.start_timer
    existing = store.find_schedule(session, row.process_key)
    if timer is None:
        if existing is not None:
            store.delete_schedule(session, existing)
        return None
    if existing is not None and (existing.event, existing.expression) == (timer["event"], timer["expression"]):
        existing.definition_id, existing.definition = row.id, row
        return existing
    recurrence = _recurrence(timer, now)
    first = recurrence.first_index_from(now) if timer["kind"] == "cycle" else 0
    values = {"definition_id": row.id, "definition": row, "event": timer["event"], "expression": timer["expression"],
              "start": recurrence.start, "period": recurrence.period.isoformat(), "repeat": recurrence.repeat,
              "occurrence": first, "next_due_at": recurrence.occurrence(first)}
    if existing is None:
        return store.add_schedule(session, ScheduleRow(process_key=row.process_key, **values))
    for key, value in values.items():
        setattr(existing, key, value)
    return existing


def due_occurrences(schedule: ScheduleRow, now: datetime, limit: int) -> list[tuple[int, datetime]]:
    """The first ``limit`` occurrences due before ``now`` that have not started an instance yet, in order."""
    recurrence, found, index = recurrence_of(schedule), [], schedule.occurrence
    while len(found) < limit and (when := recurrence.occurrence(index)) is not None and when < now:
        found.append((index, when))
        index += 1
    return found


def advance(schedule: ScheduleRow, past: int) -> None:
    """Record that occurrences before index ``past`` have started their instances; set the next due time."""
    schedule.occurrence = past
    schedule.next_due_at = recurrence_of(schedule).occurrence(past)
