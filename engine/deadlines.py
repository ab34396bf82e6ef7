"""Deadlines: when a human task is due, and when each step of its escalation ladder falls.

A user task declares its deadline with extension properties (checked at deploy by ``definitions``):

- ``due``: how long the step may take — an ISO 8601 duration (``PT2H``) or an expression over the
  instance data giving one (``reply_within``, a setting);
- ``due_in``: ``calendar`` (default) or ``working``: how ``due`` and the escalation ladder count;
- ``due_from``: ``task`` (default: from when the task is created) or ``instance`` (from when the
  instance started, e.g. "within 2 hours of receipt");
- ``due_by``: an expression giving a fixed moment (``customer_deadline``): a date means the end of
  that day in the business calendar's zone; a date-time without a zone is read in that zone.

With both ``due`` and ``due_by`` the earlier wins; an expression giving nothing (None, "") sets no
deadline. An overdue task climbs its process's escalation ladder: each step has ``after`` (how
long past the due time, counted like the due time) and either ``notify: true`` (remind the
owner) or ``to`` (``head``: the head of the task's department; a department key: that
department's head, e.g. ``gm``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .calendars import CALENDAR, BusinessCalendar, Duration, DurationError, is_duration, parse_duration
from .errors import DefinitionError

FROM_TASK, FROM_INSTANCE = "task", "instance"
DUE_FROM = (FROM_TASK, FROM_INSTANCE)
HEAD = "head"
DEFAULT_LADDER = ({"after": "PT0S", "notify": True}, {"after": "PT1H", "to": HEAD}, {"after": "PT4H", "to": "gm"})


@dataclass(frozen=True)
class DueRule:
    """A user task's deadline properties as deployed (all None when the task has no deadline)."""

    due: str | None = None
    due_in: str = CALENDAR
    due_from: str = FROM_TASK
    due_by: str | None = None

    @property
    def declared(self) -> bool:
        """Whether the task has a deadline at all."""
        return bool(self.due or self.due_by)


class DeadlineError(ValueError):
    """A deadline expression gave a value that is no duration or moment; the message names it."""


def due_time(rule: DueRule, evaluate: Callable[[str], Any], created: datetime, started: datetime,
             calendar: BusinessCalendar) -> datetime | None:
    """The task's due time under ``rule``, or None when it has none.

    ``evaluate`` runs an expression over the task's data (in the sandbox); ``created`` and
    ``started`` are when the task was created and its instance started.
    """
    candidates = []
    if rule.due:
        value = rule.due if is_duration(rule.due) else evaluate(rule.due)
        if value not in (None, ""):
            base = started if rule.due_from == FROM_INSTANCE else created
            candidates.append(calendar.add(base, _as_duration(value, rule.due), rule.due_in))
    if rule.due_by:
        value = evaluate(rule.due_by)
        if value not in (None, ""):
            candidates.append(_as_moment(value, rule.due_by, calendar))
    return min(candidates) if candidates else None


def _as_duration(value: Any, expression: str) -> Duration:
    if isinstance(value, timedelta):
        return Duration(days=value.days, seconds=value.seconds + value.microseconds / 1e6)
    try:
        return parse_duration(value)
    except DurationError:
        raise DeadlineError(f"due expression {expression!r} gave {value!r}, not an ISO 8601 duration") from None


def _as_moment(value: Any, expression: str, calendar: BusinessCalendar) -> datetime:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise DeadlineError(f"due_by expression {expression!r} gave {value!r}, not a date or time") from None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=calendar.zone)).astimezone(timezone.utc)
    if isinstance(value, date):
        return calendar.end_of_day(value)
    raise DeadlineError(f"due_by expression {expression!r} gave {value!r}, not a date or time")


# --- the escalation ladder -------------------------------------------------------------------

def late_by(due: datetime, now: datetime) -> str:
    """How late something due at ``due`` is at ``now``, as ``1d 2h 05m``."""
    minutes = max(int((now - due) / timedelta(minutes=1)), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return (f"{days}d " if days else "") + (f"{hours}h " if days or hours else "") + f"{minutes:02d}m"


def owner(task, org) -> str:
    """Who answers for a task now: its escalated owner, its assignee, the head for a head task, else its department."""
    if task.escalated_to or task.assignee:
        return task.escalated_to or task.assignee
    if task.role == HEAD:
        return org.department(task.department).head
    return f"department {task.department}"


def check_ladder(raw: object, departments: list[str], where: str) -> list[dict]:
    """Validate an ``escalation`` setting (None: the default ladder) and return it as stored.

    Raises DefinitionError naming the step and what is wrong with it.
    """
    steps = list(DEFAULT_LADDER) if raw is None else raw
    if not isinstance(steps, list) or not steps:
        raise DefinitionError("escalation must be a list of steps like {after: PT1H, to: head}", where)
    ladder, previous = [], timedelta(0)
    for number, step in enumerate(steps, start=1):
        label = f"escalation step {number}"
        if not isinstance(step, dict) or "after" not in step or (("to" in step) == bool(step.get("notify"))):
            raise DefinitionError(f"{label} needs 'after' and either 'notify: true' or 'to' (got {step!r})", where)
        try:
            after = parse_duration(str(step["after"]))
        except DurationError as err:
            raise DefinitionError(f"{label}: {err}", where) from None
        if after.years or after.months or after.weeks:
            raise DefinitionError(f"{label}: 'after' counts days, hours and minutes (got {step['after']})", where)
        if after.days * 86400 + after.clock_time.total_seconds() < previous.total_seconds():
            raise DefinitionError(f"{label} comes before step {number - 1}: order the steps by 'after'", where)
        previous = timedelta(days=after.days) + after.clock_time
        target = step.get("to")
        if target is not None and target != HEAD and target not in departments:
            raise DefinitionError(f"{label} escalates to '{target}', which is neither 'head' nor a department "
                                  f"of the organisation (known: {', '.join(departments)})", where)
        ladder.append({"after": str(step["after"]), "to": target} if target else {"after": str(step["after"]),
                                                                                    "notify": True})
    return ladder


def step_time(due_at: datetime, step: dict, basis: str, calendar: BusinessCalendar) -> datetime:
    """When a ladder step falls for a task due at ``due_at`` whose deadline counts in ``basis``."""
    return calendar.add(due_at, step["after"], basis)
