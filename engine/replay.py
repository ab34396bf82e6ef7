"""Replay: re-execute an instance from its pinned definition and recorded inputs, and compare.

An instance's history holds two kinds of events. *Inputs* are what people and the clock gave
the instance: ``instance_started`` with its data, ``task_completed`` with the submitted data,
actor and time, ``timer_fired`` (a timer and its due time), ``data_corrected``,
``instance_cancelled``, and the claims that only touch task rows. *Outputs* are what the engine did in response: ``step_completed``
(automatic steps; a gateway's decision is its ``next``), ``task_created``, ``task_cancelled``,
``instance_completed``. Other events (signatures, refusals) neither drive nor follow from the
workflow and are skipped, as are escalation events (``task_overdue_notified``, ``task_escalated``),
which change a task's owner, never the workflow.

Every input is replayed at its recorded time (the engine's injected clock) and with the business
calendar in force then, so timers and deadlines come out as they did. The timers due at one moment
fire together: consecutive ``timer_fired`` events at the same time are one firing.

:func:`replay` starts a fresh workflow on the pinned definition (after checking that its stored
files still hash to its content hash), feeds it the inputs in order, dispatching on the event
kind through ``_INPUTS`` — a new input kind (``timer_fired``) is one handler and one entry —
and checks that it produces exactly the recorded outputs. Then it compares what is *stored*
with where the replay arrived: the instance's status, its task rows (name, status, assignee,
completer, time, data) and its workflow snapshot (every step's state and data). The answer is
MATCH or the first divergence, so an instance altered behind the engine's back is caught even
when its events are intact.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.orm import Session
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from . import clock, corrections, definitions, migration, runtime, store
from .audit import EventKind, as_recorded
from .definitions import Definition
from .errors import EngineError
from .runtime import InstanceStatus, TaskStatus
from .store import DefinitionRow, EventRow, InstanceRow

_ROW_FIELDS = ("id", "name", "status", "assignee", "completed_by", "completed_at", "data")
_OUTPUTS = {EventKind.STEP_COMPLETED.value, EventKind.TASK_CREATED.value, EventKind.TASK_CANCELLED.value,
            EventKind.INSTANCE_COMPLETED.value}


@dataclass(frozen=True)
class Replay:
    """The outcome of replaying one instance: ``divergence`` is None when everything matched."""

    instance_id: int
    process_key: str
    business_key: str | None
    divergence: str | None
    events: int

    @property
    def match(self) -> bool:
        """True when the replay produced the recorded history and arrived at the stored state."""
        return self.divergence is None


class _Divergence(Exception):
    """Raised inside a replay at the first point where it and the record part ways."""


@dataclass
class _Task:
    """A human task as the replay sees it; the fields in _ROW_FIELDS are compared with the stored task row."""

    name: str
    spiff_id: str
    id: int | None = None
    status: str = TaskStatus.OPEN.value
    assignee: str | None = None
    completed_by: str | None = None
    completed_at: datetime | None = None
    data: dict | None = None


@dataclass
class _Run:
    """A replay in progress: the fresh workflow and what it produced that the history has yet to show."""

    instance_id: int
    row: DefinitionRow  # the version the replay runs on now (it changes where the instance was migrated)
    definition: Definition
    calendar: Callable[[datetime], Any]
    version_by_hash: Callable[[str], DefinitionRow | None]
    workflow: BpmnWorkflow | None = None
    started_at: datetime | None = None
    fired_at: datetime | None = None  # the time of the firing the last timer_fired events belong to
    status: str = InstanceStatus.RUNNING.value
    tasks: list[_Task] = field(default_factory=list)
    by_id: dict[int, _Task] = field(default_factory=dict)
    expected: list[tuple[str, dict, _Task | None]] = field(default_factory=list)

    def active(self) -> list[_Task]:
        """Open and claimed tasks, in creation order."""
        return [t for t in self.tasks if t.status in runtime.ACTIVE_TASK]

    def task(self, event: EventRow) -> _Task:
        """The replayed task an input event acts on; it must exist and be open or claimed."""
        found = self.by_id.get(event.task_id)
        if found is None or found.status not in runtime.ACTIVE_TASK:
            state = found.status if found else "never created"
            raise _Divergence(f"event #{event.seq} {event.kind} acts on task {event.task_id} "
                              f"'{event.data.get('task')}', which the replay has {state}")
        return found


def replay(session: Session, instance_id: int) -> Replay:
    """Replay one instance from its recorded inputs and compare with its history and stored state."""
    instance = store.get_instance(session, instance_id)
    events = store.events_of(session, instance_id)
    try:
        _replay(session, instance, events)
        divergence = None
    except _Divergence as err:
        divergence = str(err)
    return Replay(instance_id, instance.process_key, instance.business_key, divergence, len(events))


def replay_all(session: Session, progress: Callable[[int, int], None] | None = None) -> list[Replay]:
    """Replay every instance, oldest first; ``progress(done, total)`` is called after each."""
    ids = store.instance_ids(session)
    results = []
    for done, instance_id in enumerate(ids, start=1):
        results.append(replay(session, instance_id))
        if progress is not None:
            progress(done, len(ids))
    return results


def _intact(row: DefinitionRow) -> DefinitionRow:
    if definitions.content_hash(row.artifacts, row.manifest) != row.content_hash:
        raise _Divergence(f"definition {row.process_key} v{row.version} no longer matches its content hash "
                          f"{row.content_hash[:12]}: its stored files were altered")
    return row


def _replay(session: Session, instance: InstanceRow, events: list[EventRow]) -> None:
    def version_by_hash(content_hash: str) -> DefinitionRow | None:
        return store.find_definition_by_hash(session, instance.process_key, content_hash)

    # A migrated instance started on an earlier version than the one it runs on now.
    first = version_by_hash(events[0].definition_hash) if events and events[0].definition_hash else None
    row = _intact(first or instance.definition)
    run = _Run(instance.id, row, runtime.definition_of(row), lambda at: runtime.business_calendar(session, at),
               version_by_hash)
    for event in events:
        row = run.row
        if event.definition_hash != row.content_hash:
            raise _Divergence(f"event #{event.seq} {event.kind} was recorded under definition "
                              f"{(event.definition_hash or '')[:12]}, but the instance runs on "
                              f"{row.process_key} v{row.version} ({row.content_hash[:12]})")
        handler = _INPUTS.get(event.kind)
        drives = handler is not None or event.kind in _OUTPUTS
        if drives and run.workflow is None and event.kind != EventKind.INSTANCE_STARTED.value:
            raise _Divergence(f"event #{event.seq} {event.kind} comes before the instance was started")
        if handler is not None:
            if not _joins_previous(run, event):
                _nothing_pending(run, event)
            with clock.running_at(event.at, lambda at=event.at: run.calendar(at)):
                handler(run, event)
            run.fired_at = event.at if event.kind == EventKind.TIMER_FIRED.value else None
        elif event.kind in _OUTPUTS:
            _meet(run, event)
    if run.workflow is None:
        raise _Divergence("the history has no instance_started event")
    if run.row.id != instance.definition_id:
        raise _Divergence(f"the history was recorded under definition {run.row.process_key} v{run.row.version} "
                          f"({run.row.content_hash[:12]}), but the instance runs on v{instance.definition.version} "
                          f"({instance.definition.content_hash[:12]})")
    _nothing_pending(run, None)
    _compare_rows(session, instance, run)


# --- inputs ----------------------------------------------------------------------------------

def _started(run: _Run, event: EventRow) -> None:
    run.workflow, run.started_at = runtime.new_workflow(run.definition, event.data["data"]), event.at
    _advance(run, event, before={})


def _joins_previous(run: _Run, event: EventRow) -> bool:
    """Whether an input belongs with the one before it: a further timer of the same firing, or the
    start timer that started an instance (recorded after ``instance_started``; it drives nothing)."""
    if event.kind != EventKind.TIMER_FIRED.value:
        return False
    start_timer = run.definition.start_timer
    return run.fired_at == event.at or bool(start_timer and event.data["timer"] == start_timer["event"])


def _timer_fired(run: _Run, event: EventRow) -> None:
    """Fire the timers due at the event's time (once for all the timer_fired events of one firing)."""
    if _joins_previous(run, event):
        return
    due = runtime.due_timers(run.workflow, event.at)
    if event.data not in due:
        raise _Divergence(f"event #{event.seq} fires timer '{event.data['timer']}' due {event.data['due']}; "
                          f"the replayed workflow has due then: {', '.join(d['timer'] for d in due) or 'none'}")
    before = {t.id: t.state for t in runtime.all_tasks(run.workflow)}
    _advance(run, event, before, refresh_timers=True)


def _completed(run: _Run, event: EventRow) -> None:
    task = run.task(event)
    spiff_task = run.workflow.get_task_from_id(UUID(task.spiff_id))
    if spiff_task is None or spiff_task.state != TaskState.READY:
        raise _Divergence(f"event #{event.seq} completes task {event.task_id} '{task.name}', "
                          f"which the replayed workflow does not have READY")
    before = {t.id: t.state for t in runtime.all_tasks(run.workflow)}
    spiff_task.data.update(event.data["data"])
    spiff_task.run()
    task.status, task.assignee = TaskStatus.COMPLETED.value, task.assignee or event.actor
    task.completed_by, task.completed_at, task.data = event.actor, event.at, event.data["data"]
    _advance(run, event, before)


def _claimed(run: _Run, event: EventRow) -> None:
    task = run.task(event)
    task.status, task.assignee = TaskStatus.CLAIMED.value, event.actor


def _unclaimed(run: _Run, event: EventRow) -> None:
    task = run.task(event)
    task.status, task.assignee = TaskStatus.OPEN.value, None


def _corrected(run: _Run, event: EventRow) -> None:
    corrections.apply_correction(run.workflow, event.data["changes"])


def _cancelled(run: _Run, event: EventRow) -> None:
    run.status = InstanceStatus.CANCELLED.value
    for task in run.active():
        task.status = TaskStatus.CANCELLED.value
        run.expected.append((EventKind.TASK_CANCELLED.value, {"task": task.name}, task))
    run.workflow.cancel()


def _migrated(run: _Run, event: EventRow) -> None:
    """Move the replayed workflow to the version the instance was migrated to, as :func:`migration.migrate` did."""
    target = run.version_by_hash(event.data["to_hash"])
    if target is None:
        raise _Divergence(f"event #{event.seq} migrates to version {event.data['to']} "
                          f"({event.data['to_hash'][:12]}), which is not deployed")
    run.row, run.definition = _intact(target), runtime.definition_of(target)
    before = {t.id: t.state for t in runtime.all_tasks(run.workflow)}
    blocked = migration.blocking_tasks(run.workflow, run.definition)
    if blocked:
        raise _Divergence(f"event #{event.seq} migrates to version {target.version}, which removes "
                          f"{', '.join(blocked)} the replay has not finished")
    kept = migration.move_workflow(run.workflow, run.definition)
    if kept != event.data["timers_kept"]:
        raise _Divergence(f"event #{event.seq} kept timers {event.data['timers_kept']}, the replay kept {kept}")
    _advance(run, event, before)


_INPUTS: dict[str, Callable[[_Run, EventRow], None]] = {
    EventKind.INSTANCE_MIGRATED.value: _migrated,
    EventKind.INSTANCE_STARTED.value: _started,
    EventKind.TASK_COMPLETED.value: _completed,
    EventKind.TASK_CLAIMED.value: _claimed,
    EventKind.TASK_UNCLAIMED.value: _unclaimed,
    EventKind.DATA_CORRECTED.value: _corrected,
    EventKind.INSTANCE_CANCELLED.value: _cancelled,
    EventKind.TIMER_FIRED.value: _timer_fired,
}


def _advance(run: _Run, event: EventRow, before: dict, refresh_timers: bool = False) -> None:
    """What the runtime's ``_advance`` does, producing expected outputs instead of rows and events."""
    try:
        runtime.run_engine(run.instance_id, run.workflow, refresh_timers)
    except EngineError as err:
        raise _Divergence(f"replaying event #{event.seq} {event.kind} failed: {err}") from None
    for step in runtime.automatic_steps(run.workflow, before):
        run.expected.append((EventKind.STEP_COMPLETED.value, step, None))
    active = {t.spiff_id: t for t in run.active()}
    vanished, new = runtime.task_changes(list(active), run.workflow)
    for spiff_id in vanished:
        active[spiff_id].status = TaskStatus.CANCELLED.value
        run.expected.append((EventKind.TASK_CANCELLED.value, {"task": active[spiff_id].name}, active[spiff_id]))
    for spiff_id, spiff_task in new.items():
        info = runtime.task_info(run.definition, spiff_task)
        try:
            due, _ = runtime.task_deadline(run.instance_id, run.definition, info, spiff_task, event.at, run.started_at)
        except EngineError as err:
            raise _Divergence(f"replaying event #{event.seq} {event.kind} failed: {err}") from None
        task = _Task(name=info.bpmn_id, spiff_id=spiff_id)
        run.tasks.append(task)
        run.expected.append((EventKind.TASK_CREATED.value, runtime.task_created_data(info, due), task))
    if run.workflow.is_completed():
        run.status = InstanceStatus.COMPLETED.value
        run.expected.append((EventKind.INSTANCE_COMPLETED.value, {"data": runtime.current_data(run.workflow)}, None))


# --- comparing -------------------------------------------------------------------------------

def _describe(kind: str, data: dict) -> str:
    if kind == EventKind.STEP_COMPLETED.value:
        return f"step '{data.get('step')}'" + (f" → {', '.join(data['next'])}" if data.get("next") else "")
    if kind in (EventKind.TASK_CREATED.value, EventKind.TASK_CANCELLED.value):
        return f"{kind} '{data.get('task')}'"
    return kind


def _nothing_pending(run: _Run, event: EventRow | None) -> None:
    if run.expected:
        kind, data, _ = run.expected[0]
        where = f"before event #{event.seq} {event.kind}" if event else "after the last event"
        raise _Divergence(f"{where}: the replay produced {_describe(kind, data)}, which the history lacks")


def _meet(run: _Run, event: EventRow) -> None:
    """Match one recorded output with the next one the replay produced."""
    if not run.expected:
        raise _Divergence(f"event #{event.seq}: the history records {_describe(event.kind, event.data)}, "
                          f"which the replay did not produce")
    kind, data, task = run.expected.pop(0)
    if kind != event.kind or as_recorded(data) != event.data:
        raise _Divergence(f"event #{event.seq}: the history records {_describe(event.kind, event.data)}, the replay "
                          f"produced {_describe(kind, data)}" + _first_difference(event.data, as_recorded(data)))
    if kind == EventKind.TASK_CREATED.value:
        task.id = event.task_id
        run.by_id[event.task_id] = task
    elif kind == EventKind.TASK_CANCELLED.value and run.by_id.get(event.task_id) is not task:
        raise _Divergence(f"event #{event.seq} cancels task {event.task_id}; the replay cancelled task {task.id}")


def _first_difference(stored: Any, replayed: Any, path: str = "") -> str:
    """Where two recorded values first differ, as ``: at data.field, stored X, replay Y``."""
    if isinstance(stored, dict) and isinstance(replayed, dict):
        for key in sorted(set(stored) | set(replayed)):
            if stored.get(key) != replayed.get(key):
                return _first_difference(stored.get(key), replayed.get(key), f"{path}.{key}" if path else key)
        return ""
    return f": at {path or 'the value'}, stored {stored!r}, replay {replayed!r}"


def _compare_rows(session: Session, instance: InstanceRow, run: _Run) -> None:
    """The stored instance row, task rows and snapshot against where the replay arrived."""
    if instance.status != run.status:
        raise _Divergence(f"stored status is {instance.status}, the replay ends {run.status}")
    rows = store.tasks_of_instance(session, instance.id)
    if len(rows) != len(run.tasks):
        raise _Divergence(f"{len(rows)} task rows are stored, the replay created {len(run.tasks)} tasks")
    for row, task in zip(rows, run.tasks):
        stored, replayed = ({name: getattr(t, name) for name in _ROW_FIELDS} for t in (row, task))
        if as_recorded(stored) != as_recorded(replayed):
            raise _Divergence(f"stored task row {row.id} '{row.name}' differs from the replay"
                              + _first_difference(as_recorded(stored), as_recorded(replayed)))
    _, stored_workflow = runtime.load_workflow(instance)
    stored_steps, replayed_steps = _steps(stored_workflow), _steps(run.workflow)
    for number, (stored, replayed) in enumerate(zip(stored_steps, replayed_steps), start=1):
        if stored != replayed:
            raise _Divergence(f"stored snapshot, step {number} '{stored['step']}' differs from the replay"
                              + _first_difference(stored, replayed))
    if len(stored_steps) != len(replayed_steps):
        raise _Divergence(f"the stored snapshot has {len(stored_steps)} steps, the replay {len(replayed_steps)}")
    stored_data, replayed_data = (as_recorded(runtime.current_data(w)) for w in (stored_workflow, run.workflow))
    if stored_data != replayed_data:
        raise _Divergence("stored instance data differs from the replay"
                          + _first_difference(stored_data, replayed_data))


def _steps(workflow: BpmnWorkflow) -> list[dict]:
    """Every step of a workflow in tree order with its state and data: the snapshot minus ids and clocks."""
    return [as_recorded({"step": t.task_spec.bpmn_id or t.task_spec.name, "state": TaskState.get_name(t.state),
                         "data": t.data}) for t in workflow.get_tasks()]
