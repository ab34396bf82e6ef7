"""Escalation: an overdue task climbs its process's ladder, each step recorded with its reason.

The ladder (``escalation`` in ``processes/settings.yaml``, see :mod:`engine.deadlines`) says how
long after the task's due time each step falls. A ``notify`` step reminds the task's current
owner (``task_overdue_notified``); a ``to`` step makes the head of the task's department, or of the
named department (``gm``: the general manager), its owner (``task_escalated``). The escalated task
stays in its department's inbox and also appears in the new owner's, with the reason; the new
owner may claim and complete it even outside the department. A step whose target already owns
the task is passed over. Steps missed while no worker ran are taken together, in order.

No snapshot is loaded here: escalation reads task rows, the definition's manifest and the calendar.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from . import audit, deadlines, runtime, store
from .audit import EventKind
from .calendars import CALENDAR, BusinessCalendar
from .directory import Organisation
from .store import InstanceRow, TaskRow


@dataclass(frozen=True)
class Step:
    """One escalation step taken: which task, what kind (the event kind), and the event's data."""

    task_id: int
    kind: str
    data: dict


def _target(step: dict, task: TaskRow, org: Organisation) -> tuple[str, str]:
    """The user a ``to`` step hands the task to, and how the reason names them."""
    department = org.department(task.department if step["to"] == deadlines.HEAD else step["to"])
    return department.head, f"the head of {department.label} ({department.head})"


def _take(session: Session, instance: InstanceRow, task: TaskRow, level: int, step: dict, org: Organisation,
          calendar: BusinessCalendar, now: datetime) -> Step | None:
    due = task.due_at.astimezone(calendar.zone).isoformat(timespec="minutes")
    late = deadlines.late_by(task.due_at, now)
    current = deadlines.owner(task, org)
    if step.get("notify"):
        reason = f"'{task.title}' was due {due} and is {late} overdue; reminded {current}"
        data = {"task": task.name, "level": level, "due": task.due_at.isoformat(), "late": late,
                "notified": current, "reason": reason}
        kind = EventKind.TASK_OVERDUE_NOTIFIED
    else:
        target, named = _target(step, task, org)
        if target == current:
            return None
        reason = f"'{task.title}' was due {due} and is {late} overdue; escalated to {named}"
        data = {"task": task.name, "level": level, "from": current, "to": target, "reason": reason}
        task.escalated_to, task.escalation_reason = target, reason
        kind = EventKind.TASK_ESCALATED
    audit.record(session, kind, runtime.SYSTEM_ACTOR, now, instance=instance, task_id=task.id, data=data)
    return Step(task.id, kind.value, data)


def escalate_due(session: Session, instance: InstanceRow, now: datetime) -> list[Step]:
    """Take every escalation step due before ``now`` on the instance's tasks; set each task's next step time."""
    tasks = store.tasks_to_escalate(session, instance.id, now, runtime.ACTIVE_TASK)
    if not tasks:
        return []
    org, calendar = runtime.organisation(session), runtime.business_calendar(session)
    ladder = instance.definition.manifest.get("escalation") or []
    taken = []
    for task in tasks:
        basis = instance.definition.manifest["user_tasks"][f"{task.process}/{task.name}"].get("due_in", CALENDAR)
        level, task.escalate_at = task.escalation_level, None
        while level < len(ladder):
            when = deadlines.step_time(task.due_at, ladder[level], basis, calendar)
            if when >= now:
                task.escalate_at = when
                break
            level += 1
            step = _take(session, instance, task, level, ladder[level - 1], org, calendar, now)
            if step is not None:
                taken.append(step)
        task.escalation_level = level
    instance.updated_at = now  # the instance's revision moves with its tasks, so concurrent writers collide
    return taken
