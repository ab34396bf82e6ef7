"""Corrections: submitted data is corrected by a new event, never overwritten.

A correction is a ``data_corrected`` event with the reason and each field's old and new value.
The task's submitted data (its row and its ``task_completed`` event) stays as submitted;
:func:`submitted_data` reads a task's data as it stands after its corrections. A correction
amends the record, not the past: steps already taken are not re-run, and the corrected values
reach the workflow's live data (:func:`apply_correction`), which replay repeats at the same
place in the history.
"""

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from . import audit, runtime, snapshot, store
from .audit import EventKind
from .errors import Forbidden, InvalidTransition
from .store import TaskRow


def submitted_data(session: Session, task: TaskRow) -> dict[str, Any]:
    """A completed task's data as it stands: what was submitted, with every later correction applied."""
    data = dict(task.data or {})
    for event in store.events_of(session, task.instance_id):
        if event.kind == EventKind.DATA_CORRECTED.value and event.task_id == task.id:
            _apply_changes(data, event.data["changes"])
    return data


def _apply_changes(data: dict[str, Any], changes: dict[str, dict]) -> None:
    for name, change in changes.items():
        if change["new"] is None:
            data.pop(name, None)
        else:
            data[name] = change["new"]


def apply_correction(workflow: BpmnWorkflow, changes: dict[str, dict]) -> None:
    """Carry corrected values into the workflow's live data: what later steps and ``show`` will see.

    Steps already taken are not re-run (the record of what happened stays as it happened); the
    corrected values reach the waiting and ready tasks, the latest step's data, and the final
    data of an ended workflow.
    """
    live = [t for t in runtime.all_tasks(workflow)
            if t.state in (TaskState.READY, TaskState.WAITING, TaskState.STARTED)]
    if workflow.last_task is not None:
        live.append(workflow.last_task)
    for task in live:
        _apply_changes(task.data, changes)
    if workflow.is_completed():
        _apply_changes(workflow.data, changes)


def correct(session: Session, task_id: int, actor: str, now: datetime, values: dict[str, Any],
            reason: str) -> TaskRow:
    """Correct a completed task's submitted data: a new event with the reason, old and new values.

    Nothing is overwritten: the task's submitted data and its completion event stay as they were;
    the correction is its own event, and the corrected values reach the workflow's live data (see
    :func:`apply_correction`). The task's completer or the head of its department may correct it;
    the corrected whole must still satisfy the form.
    """
    task = store.get_task(session, task_id)
    org = runtime.organisation(session)
    org.user(actor)
    if task.status != runtime.TaskStatus.COMPLETED.value:
        raise InvalidTransition(f"cannot correct {runtime.task_label(task)}: it is {task.status}; "
                                f"only submitted data can be corrected")
    if actor not in (task.completed_by, org.department(task.department).head):
        raise Forbidden(f"cannot correct {runtime.task_label(task)}: only its completer ({task.completed_by}) "
                        f"or the head of '{task.department}' may")
    if not reason.strip():
        raise InvalidTransition(f"cannot correct {runtime.task_label(task)}: give a reason")
    instance = task.instance
    _, workflow = runtime.load_workflow(instance)
    current = submitted_data(session, task)
    clean = runtime.form_of(session, task).validate({**current, **values})
    changes = {name: {"old": current.get(name), "new": clean.get(name)} for name in values
               if clean.get(name) != current.get(name)}
    if not changes:
        raise InvalidTransition(f"cannot correct {runtime.task_label(task)}: "
                                f"the values given are the ones it has")
    apply_correction(workflow, changes)
    instance.state = snapshot.dump(workflow)
    instance.updated_at = now
    audit.record(session, EventKind.DATA_CORRECTED, actor, now, instance=instance, task_id=task.id,
                 data={"task": task.name, "form": task.form_key, "reason": reason, "changes": changes})
    return task
