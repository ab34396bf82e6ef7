"""Runtime: start instances, claim and complete their tasks, run the engine, cancel.

Each public function here is one user command. It takes a Session and ``now``, checks everything
before it changes anything, and leaves the caller to commit: the instance's new state, its human
tasks and its history events are written in that one transaction or not at all. This module
holds the status vocabularies, the table of allowed moves, and the one function that moves a
status.
"""

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy.orm import Session
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (CycleTimerEventDefinition,
                                                              DurationTimerEventDefinition, TimerEventDefinition)
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.util.task import TaskState

from . import audit, cache, clock, deadlines, definitions, revisions, schedules, signatures, snapshot, store
from .audit import EventKind
from .calendars import BusinessCalendar, DurationError
from .definitions import Definition, UserTaskInfo
from .directory import Organisation
from .errors import (ConcurrentUpdate, DefinitionError, EngineError, ExpressionError, Forbidden, InvalidTransition,
                     NotFound, Refusal)
from .forms import Form
from .sandbox import make_script_engine
from .store import CalendarRow, DefinitionRow, InstanceRow, OrganisationRow, ScheduleRow, TaskRow

SYSTEM_ACTOR = "qproc"


class InstanceStatus(str, Enum):
    """Where an instance stands."""

    RUNNING = "running"      # started and not yet at an end event
    COMPLETED = "completed"  # reached an end event; nothing more happens
    CANCELLED = "cancelled"  # stopped by a user; its open tasks were cancelled with it


class TaskStatus(str, Enum):
    """Where a human task stands."""

    OPEN = "open"            # in its department's inbox, unclaimed
    CLAIMED = "claimed"      # taken by one member of the department
    COMPLETED = "completed"  # submitted; its data is in the history
    CANCELLED = "cancelled"  # withdrawn by the process (instance cancelled, path left)


_MOVES: dict[type[Enum], dict[Enum, set[Enum]]] = {
    InstanceStatus: {
        InstanceStatus.RUNNING: {InstanceStatus.COMPLETED, InstanceStatus.CANCELLED},
    },
    TaskStatus: {
        TaskStatus.OPEN: {TaskStatus.CLAIMED, TaskStatus.COMPLETED, TaskStatus.CANCELLED},
        TaskStatus.CLAIMED: {TaskStatus.OPEN, TaskStatus.COMPLETED, TaskStatus.CANCELLED},
    },
}
ACTIVE_TASK = (TaskStatus.OPEN.value, TaskStatus.CLAIMED.value)


def _move(row: InstanceRow | TaskRow, new: InstanceStatus | TaskStatus, what: str) -> None:
    """The only place a status changes: refuses any move the table does not list."""
    kind = type(new)
    current = kind(row.status)
    if new not in _MOVES[kind].get(current, set()):
        raise InvalidTransition(f"cannot {what}: it is {current.value}")
    row.status = new.value


# --- caches of immutable things --------------------------------------------------------------

_definitions: dict[str, Definition] = {}
_calendars: dict[str, BusinessCalendar] = {}
_SCRIPT_ENGINE = make_script_engine()


def definition_of(row: DefinitionRow) -> Definition:
    """The parsed Definition of a deployed version (parsed once per process, then cached by content hash)."""
    found = _definitions.get(row.content_hash)
    if found is None:
        found = _definitions[row.content_hash] = definitions.from_stored(row.artifacts, row.manifest)
    return found


def _in_force(row, built: dict, build, missing: str):
    """The object built from a loaded file's stored content (built once per content), NotFound when none is loaded."""
    if row is None:
        raise NotFound(missing)
    key = audit.canonical(row.content)
    found = built.get(key)
    if found is None:
        found = built[key] = build(row.content)
    return found


def organisation(session: Session) -> Organisation:
    """The organisation in force; raises NotFound when none has been loaded yet."""
    row_id = store.current_organisation_id(session)
    if row_id is None:
        raise NotFound("no organisation is loaded yet: run 'qproc org load org.yaml'")
    return cache.organisation(session, row_id,
                              lambda: Organisation.from_dict(store.get_organisation(session, row_id).content))


def business_calendar(session: Session, at: datetime | None = None) -> BusinessCalendar:
    """The business calendar in force (at ``at``, when given); raises NotFound when none was loaded by then."""
    return _in_force(store.current_calendar(session, at), _calendars, BusinessCalendar.from_dict,
                     "no business calendar is loaded yet: run 'qproc calendar load calendar.yaml'")


def command_clock(session: Session, now: datetime) -> AbstractContextManager:
    """The clock a command runs Spiff and expressions under: ``now``, and the calendar in force when asked."""
    return clock.running_at(now, lambda: business_calendar(session))


# --- organisation, calendar and deployment ---------------------------------------------------

def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise NotFound(f"cannot read {what} file {path}: {err.strerror}") from None


def load_organisation(session: Session, path: Path, actor: str, now: datetime) -> Organisation:
    """Validate an organisation file and put it in force; recorded in the system history."""
    org = Organisation.from_yaml(_read(path, "organisation"), str(path))
    store.add_organisation(session, OrganisationRow(loaded_at=now, loaded_by=actor, content=org.to_dict()))
    audit.record(session, EventKind.ORGANISATION_LOADED, actor, now,
                 data={"file": path.name, "departments": len(org.departments), "users": len(org.users)})
    return org


def load_calendar(session: Session, path: Path, actor: str, now: datetime) -> BusinessCalendar:
    """Validate a business calendar file and put it in force; recorded in the system history."""
    calendar = BusinessCalendar.from_yaml(_read(path, "calendar"), str(path))
    store.add_calendar(session, CalendarRow(loaded_at=now, loaded_by=actor, content=calendar.to_dict()))
    years = sorted({day.year for day in calendar.holidays})
    audit.record(session, EventKind.CALENDAR_LOADED, actor, now,
                 data={"file": path.name, "name": calendar.name, "timezone": calendar.zone_name,
                       "holiday_years": years, "holidays": len(calendar.holidays), "workdays": len(calendar.workdays)})
    return calendar


@dataclass(frozen=True)
class Deployment:
    """What deploying one process did: its version, whether that version is new, and its revision status.

    ``change_instance`` is the document_change instance started to approve a draft (None otherwise).
    """

    process_key: str
    name: str
    version: int
    content_hash: str
    created: bool
    label: str | None = None
    status: str | None = None
    change_instance: int | None = None


def deploy(session: Session, paths: list[Path], forms_dir: Path, actor: str, now: datetime,
           settings_file: Path | None = None, note: str | None = None, new_edition: bool = False) -> list[Deployment]:
    """Check and deploy BPMN/DMN files: each executable process whose content is new becomes its next version.

    Identical content is a no-op (``created`` False). Nothing is written if any file fails its checks.
    A process with deadlines needs a business calendar loaded; one with a timer start event gets
    a schedule (see :mod:`engine.schedules`) once its version is active. Each new version gets its
    revision label and ``note``; a new version of a controlled process is a draft and a document_change
    instance is started to approve it (see :mod:`engine.revisions`), so document_change is deployed first.
    """
    org = organisation(session)
    org.user(actor)
    results = []
    prepared = definitions.prepare(paths, org, forms_dir, settings_file)
    for definition in sorted(prepared, key=lambda d: d.process_key != revisions.DOCUMENT_CHANGE):
        existing = store.find_definition_by_hash(session, definition.process_key, definition.content_hash)
        if existing is not None:
            kept = store.revision_of(session, existing.id)
            results.append(Deployment(existing.process_key, existing.name, existing.version,
                                      existing.content_hash, created=False, label=kept.label, status=kept.status))
            continue
        if any(definition.user_task(*key.split("/", 1)).due_rule.declared for key in definition.manifest["user_tasks"]):
            business_calendar(session)
        row = store.add_definition(session, DefinitionRow(
            process_key=definition.process_key, name=definition.name,
            version=store.latest_version_number(session, definition.process_key) + 1,
            content_hash=definition.content_hash, manifest=definition.manifest, artifacts=definition.artifacts,
            deployed_at=now, deployed_by=actor))
        _definitions.setdefault(row.content_hash, definition)
        revision, obsoleted = revisions.register(session, row, note, new_edition, actor, now)
        data = {"process": row.process_key, "version": row.version, "files": sorted(row.artifacts),
                "revision": revision.label, "note": note, "status": revision.status,
                "activation": revision.activation, "obsoletes": obsoleted}
        schedule = _put_schedule(session, row, now) if revision.status == revisions.RevisionStatus.ACTIVE.value else None
        if schedule is not None:
            data["schedule"] = {"timer": schedule.event, "next": _iso(schedule.next_due_at)}
        audit.record(session, EventKind.DEFINITION_DEPLOYED, actor, now, definition_hash=row.content_hash, data=data)
        if revision.status == revisions.RevisionStatus.DRAFT.value:
            revision.change_instance_id = _request_approval(session, row, revision, actor, now).id
        results.append(Deployment(row.process_key, row.name, row.version, row.content_hash, created=True,
                                  label=revision.label, status=revision.status,
                                  change_instance=revision.change_instance_id))
    return results


def _put_schedule(session: Session, row: DefinitionRow, now: datetime) -> ScheduleRow | None:
    """The schedule of a version put in force (its timer start event's), if it has one."""
    with command_clock(session, now):
        return schedules.deploy(session, row, definition_of(row), now)


def _request_approval(session: Session, row: DefinitionRow, revision, actor: str, now: datetime) -> InstanceRow:
    """Start the document_change instance that approves a draft version (P4), on document_change's active version."""
    change = store.active_definition(session, revisions.DOCUMENT_CHANGE)
    if change is None:
        raise InvalidTransition(
            f"{row.process_key} version {row.version} ({revision.label}) must be approved through a document change "
            f"(P4), but no '{revisions.DOCUMENT_CHANGE}' process is deployed: deploy processes/document_change.bpmn "
            f"first, or on a development database switch to direct activation "
            f"(qproc config set activation direct --reason ...)")
    return _begin(session, change, definition_of(change), actor, now, revisions.approval_request(row, revision),
                  business_key=f"{row.process_key} v{row.version} {revision.label}")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# --- running ---------------------------------------------------------------------------------

def new_workflow(definition: Definition, data: dict[str, Any]) -> BpmnWorkflow:
    """A fresh workflow of a definition, seeded with ``data``, running expressions in the sandbox."""
    workflow = BpmnWorkflow(definition.spec, definition.subprocess_specs, script_engine=_SCRIPT_ENGINE)
    workflow.task_tree.data.update(data)
    return workflow


def all_tasks(workflow: BpmnWorkflow) -> list:
    """Every task of the workflow and of its called processes, in creation order."""
    tasks = list(workflow.tasks.values())
    for sub in workflow.subprocesses.values():
        tasks.extend(sub.tasks.values())
    return tasks


def _step_label(task) -> str:
    spec = task.task_spec
    return f"'{spec.bpmn_name or spec.bpmn_id}' ({spec.bpmn_id})" if spec.bpmn_id else f"'{spec.name}'"


def run_engine(instance_id: int, workflow: BpmnWorkflow, refresh_timers: bool = False) -> None:
    """Run the workflow's automatic steps to the next wait; a failing expression becomes an ExpressionError.

    With ``refresh_timers`` the timers due at the clock's ``now`` fire first. Call inside the command clock.
    """
    try:
        if refresh_timers:
            workflow.refresh_timers()
        workflow.do_engine_steps()
    except WorkflowException as err:
        task = getattr(err, "task", None)
        where = f" at step {_step_label(task)}" if task is not None else ""
        cause = f" ({err.__context__})" if err.__context__ is not None and str(err.__context__) not in str(err) else ""
        raise ExpressionError(f"instance {instance_id}{where}: {err}{cause}") from None


def automatic_steps(workflow: BpmnWorkflow, before: dict) -> list[dict]:
    """The ``step_completed`` data of each automatic step (gateway, script, event) completed since ``before``.

    ``before`` maps task id to state. A gateway's decision is its ``next``: the steps it chose.
    """
    steps = []
    for task in all_tasks(workflow):
        spec = task.task_spec
        if (task.state != TaskState.COMPLETED or before.get(task.id) == TaskState.COMPLETED
                or spec.bpmn_id is None or spec.manual):
            continue
        data = {"step": spec.bpmn_id, "name": spec.bpmn_name, "type": type(spec).__name__}
        if len(spec.outputs) > 1:
            data["next"] = sorted(c.task_spec.bpmn_id or c.task_spec.name for c in task.children
                                  if c.state & TaskState.DEFINITE_MASK or c.state & TaskState.FINISHED_MASK)
        steps.append(data)
    return steps


def task_changes(active: list[str], workflow: BpmnWorkflow) -> tuple[list[str], dict[str, Any]]:
    """How human tasks must follow the workflow: which active ones (Spiff ids, in creation order)
    are no longer READY, and which READY user tasks are new (by Spiff id, in the workflow's tree order)."""
    ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
    vanished = [spiff_id for spiff_id in active if ready.pop(spiff_id, None) is None]
    return vanished, ready


def task_info(definition: Definition, spiff_task) -> UserTaskInfo:
    """The routing facts of a Spiff user task."""
    return definition.user_task(spiff_task.workflow.spec.name, spiff_task.task_spec.bpmn_id)


def task_created_data(info: UserTaskInfo, due: datetime | None) -> dict[str, Any]:
    """What a ``task_created`` event records about a new human task (its due time when it has one)."""
    data = {"task": info.bpmn_id, "title": info.title, "department": info.department, "role": info.role,
            "form": info.form}
    if due is not None:
        data["due"] = due.isoformat()
    return data


# --- timers and deadlines --------------------------------------------------------------------

def _plain(moment: datetime) -> datetime:
    """A datetime Spiff's timer code made (of its clock's subclass) as a plain aware UTC datetime."""
    moment = moment.astimezone(timezone.utc)
    return datetime.combine(moment.date(), moment.time(), timezone.utc)


def _timer_due(task) -> datetime | None:
    """When a waiting timer task falls due (its next cycle for a cycle timer), None if it never will."""
    timer, value = task.task_spec.event_definition, task.internal_data.get("event_value")
    if value is None:
        return None
    if isinstance(timer, CycleTimerEventDefinition):
        return _plain(datetime.fromisoformat(value["next"])) if value["cycles"] != 0 else None
    if isinstance(timer, DurationTimerEventDefinition):
        return _plain(TimerEventDefinition.get_datetime(value))
    moment = TimerEventDefinition.parse_time_or_duration(value)
    return _plain(moment) if isinstance(moment, datetime) else None


def _waiting_timers(workflow: BpmnWorkflow) -> list[tuple[Any, datetime]]:
    """Every waiting timer of the workflow (its called processes included) with its due time, earliest first."""
    found = []
    for task in workflow.event_manager.tasks.values():
        if isinstance(task.task_spec.event_definition, TimerEventDefinition) and task.state == TaskState.WAITING:
            due = _timer_due(task)
            if due is not None:
                found.append((task, due))
    return sorted(found, key=lambda item: item[1])


def _skip_missed_cycles(task, now: datetime) -> None:
    """Let a cycle timer that missed several occurrences (no worker ran) fire once, for the latest of them.

    Spiff would fire one missed occurrence per engine run, the later ones unrecorded; moving the
    timer's next occurrence (its ``event_value``) up to the last one before ``now`` makes each
    firing a single, recorded input.
    """
    value = task.internal_data.get("event_value")
    if not isinstance(task.task_spec.event_definition, CycleTimerEventDefinition) or not value:
        return
    due, period = datetime.fromisoformat(value["next"]), timedelta(seconds=value["duration"])
    if value["cycles"] == 0 or due >= now or not period:
        return
    skip = (now - due - timedelta(microseconds=1)) // period
    if value["cycles"] > 0:
        skip = min(skip, value["cycles"] - 1)
        value["cycles"] -= skip
    value["next"] = (due + skip * period).isoformat()


def due_timers(workflow: BpmnWorkflow, now: datetime) -> list[dict]:
    """The waiting timers due before ``now``, earliest first, as ``timer_fired`` data ({timer, due}).

    A cycle timer behind by several occurrences is first moved to the latest of them (see
    :func:`_skip_missed_cycles`); ``run_engine(..., refresh_timers=True)`` at ``now`` then fires exactly these.
    """
    for task, _ in _waiting_timers(workflow):
        _skip_missed_cycles(task, now)
    return [{"timer": task.task_spec.bpmn_id, "due": due.isoformat()}
            for task, due in _waiting_timers(workflow) if due < now]


def _boundary_timer_due(task) -> datetime | None:
    """The earliest due time of the timers attached to a user task, None when it has none."""
    split = task.parent
    if split is None or not isinstance(split.task_spec, BoundaryEventSplit):
        return None
    dues = [_timer_due(t) for t in split.children if isinstance(t.task_spec, BoundaryEvent)
            and isinstance(t.task_spec.event_definition, TimerEventDefinition) and t.state == TaskState.WAITING]
    dues = [d for d in dues if d is not None]
    return min(dues) if dues else None


def task_deadline(instance_id: int, definition: Definition, info: UserTaskInfo, spiff_task, created: datetime,
                  started: datetime) -> tuple[datetime | None, datetime | None]:
    """A new task's due time (its own deadline or an attached timer's, whichever is earlier) and the
    time of the first step of its escalation ladder (only for a deadline of its own). Call inside the command clock.
    """
    def evaluate(expression: str) -> Any:
        try:
            return _SCRIPT_ENGINE.environment.evaluate(expression, spiff_task.data)
        except NameError:
            return None  # a form field left empty: no deadline (deploy refused names no form or setting has)
        except EngineError:
            raise
        except Exception as err:  # whatever the process owner's expression raises is reported, not crashed on
            raise ExpressionError(f"instance {instance_id}: the deadline of task '{info.bpmn_id}' "
                                  f"({expression!r}) failed: {err}") from None

    rule, own = info.due_rule, None
    if rule.declared:
        try:
            own = deadlines.due_time(rule, evaluate, created, started, clock.calendar())
        except (deadlines.DeadlineError, DurationError) as err:
            raise ExpressionError(f"instance {instance_id}: the deadline of task '{info.bpmn_id}': {err}") from None
    timer = _boundary_timer_due(spiff_task)
    due = min(d for d in (own, timer) if d is not None) if own or timer else None
    ladder = definition.escalation
    escalate = deadlines.step_time(due, ladder[0], rule.due_in, clock.calendar()) if own and ladder else None
    return due, escalate


def reschedule(session: Session, instance: InstanceRow, workflow: BpmnWorkflow | None = None,
               active: list[TaskRow] | None = None) -> None:
    """Store when the instance next has work due: its earliest timer or its tasks' next escalation.

    With ``workflow`` the timer part is read from it; without, the stored ``timer_due_at`` stands.
    ``active``, when the caller holds them, are all of the instance's task rows that may be active
    (every open or claimed one among them): their escalation times are then read in memory, not queried.
    """
    if instance.status != InstanceStatus.RUNNING.value:
        instance.timer_due_at = instance.next_due_at = None
        return
    if workflow is not None:
        timers = _waiting_timers(workflow)
        instance.timer_due_at = timers[0][1] if timers else None
    if active is None:
        escalation = store.next_escalation(session, instance.id, ACTIVE_TASK)
    else:
        escalation = min((row.escalate_at for row in active if row.status in ACTIVE_TASK and row.escalate_at),
                         default=None)
    candidates = [d for d in (instance.timer_due_at, escalation) if d]
    instance.next_due_at = min(candidates) if candidates else None


# --- moving an instance on -------------------------------------------------------------------

def _sync_tasks(session: Session, instance: InstanceRow, definition: Definition, workflow: BpmnWorkflow,
                actor: str, now: datetime) -> list[TaskRow]:
    """Make the instance's human tasks match the workflow's ready user tasks: create new, cancel vanished.

    Returns the instance's task rows that were active before or were created (the vanished ones now cancelled).
    """
    with session.no_autoflush:  # saves a flush; statuses changed by this command are checked in memory here
        rows = {row.spiff_id: row for row in store.tasks_of_instance(session, instance.id, ACTIVE_TASK)
                if row.status in ACTIVE_TASK}
    vanished, new = task_changes(list(rows), workflow)
    for row in (rows[spiff_id] for spiff_id in vanished):
        _move(row, TaskStatus.CANCELLED, f"cancel task {row.id}")
        row.escalate_at = None
        audit.record(session, EventKind.TASK_CANCELLED, actor, now, instance=instance, task_id=row.id,
                     data={"task": row.name})
    for spiff_id, task in new.items():
        info = task_info(definition, task)
        due_at, escalate_at = task_deadline(instance.id, definition, info, task, now, instance.started_at)
        row = store.add_task(session, TaskRow(
            instance=instance, instance_id=instance.id, spiff_id=spiff_id, process=info.process, name=info.bpmn_id,
            title=info.title, department=info.department, role=info.role, form_key=info.form,
            status=TaskStatus.OPEN.value, created_at=now, due_at=due_at, escalate_at=escalate_at, escalation_level=0))
        audit.record(session, EventKind.TASK_CREATED, actor, now, instance=instance, task_id=row.id,
                     data=task_created_data(info, due_at))
        rows[spiff_id] = row
    return list(rows.values())


def _settle(session: Session, instance: InstanceRow, definition: Definition, workflow: BpmnWorkflow,
            actor: str, now: datetime, before: dict) -> list[TaskRow]:
    """Record what the engine did since ``before``: its steps, the human tasks that follow, the end if reached.

    Returns the task rows :func:`_sync_tasks` returns.
    """
    for step in automatic_steps(workflow, before):
        audit.record(session, EventKind.STEP_COMPLETED, actor, now, instance=instance, data=step)
    rows = _sync_tasks(session, instance, definition, workflow, actor, now)
    if workflow.is_completed():
        _move(instance, InstanceStatus.COMPLETED, f"complete instance {instance.id}")
        instance.ended_at = now
        audit.record(session, EventKind.INSTANCE_COMPLETED, actor, now, instance=instance,
                     data={"data": current_data(workflow)})
        if instance.process_key == revisions.DOCUMENT_CHANGE:
            activated = revisions.document_change_completed(session, instance, current_data(workflow), now)
            if activated is not None:
                _put_schedule(session, activated.definition, now)
    return rows


def _save(session: Session, instance: InstanceRow, workflow: BpmnWorkflow, now: datetime,
          active: list[TaskRow] | None = None) -> None:
    _save_state(session, instance, workflow)
    instance.updated_at = now
    reschedule(session, instance, workflow, active)


def _advance(session: Session, instance: InstanceRow, definition: Definition, workflow: BpmnWorkflow,
             actor: str, now: datetime, before: dict) -> None:
    """Run the engine to the next wait, then record steps, sync tasks, finish if ended, save and reschedule."""
    run_engine(instance.id, workflow)
    active = _settle(session, instance, definition, workflow, actor, now, before)
    _save(session, instance, workflow, now, active)


def continue_migrated(session: Session, instance: InstanceRow, definition: Definition, workflow: BpmnWorkflow,
                      actor: str, now: datetime, before: dict) -> None:
    """Run an instance just moved onto another version's specs (see :mod:`engine.migration`) to its next wait
    and record what followed, as any command does."""
    _advance(session, instance, definition, workflow, actor, now, before)


def timer_schedule(workflow: BpmnWorkflow) -> list[dict]:
    """Every waiting timer of the workflow as ``{timer, due}``, earliest first (what a migration keeps)."""
    return [{"timer": task.task_spec.bpmn_id, "due": due.isoformat()} for task, due in _waiting_timers(workflow)]


def _fire_due_timers(session: Session, instance: InstanceRow, definition: Definition, workflow: BpmnWorkflow,
                     now: datetime) -> list[dict]:
    """Fire every timer due before ``now`` and record it: the ``timer_fired`` inputs first, then what followed.

    Returns the inputs' data. Replaying the history meets the same inputs and fires the same timers.
    """
    fired = due_timers(workflow, now)
    if not fired:
        return []
    for data in fired:
        audit.record(session, EventKind.TIMER_FIRED, SYSTEM_ACTOR, now, instance=instance, data=data)
    before = {t.id: t.state for t in all_tasks(workflow)}
    run_engine(instance.id, workflow, refresh_timers=True)
    _settle(session, instance, definition, workflow, SYSTEM_ACTOR, now, before)
    return fired


def _public_data(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "data_objects"}


def current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """A workflow's current data: what its most recent step left (the final data once it has ended)."""
    if workflow.is_completed():
        return _public_data(workflow.data)
    source = workflow.last_task or workflow.task_tree
    return _public_data(source.data)


def load_workflow(instance: InstanceRow) -> tuple[Definition, BpmnWorkflow]:
    """An instance's pinned Definition and its workflow restored from the stored snapshot."""
    definition = definition_of(instance.definition)
    workflow = snapshot.load(instance.state, definition.spec, definition.subprocess_specs, _SCRIPT_ENGINE)
    return definition, workflow


def _begin(session: Session, row: DefinitionRow, definition: Definition, actor: str, now: datetime,
           data: dict[str, Any] | None, business_key: str | None, timer: dict | None = None) -> InstanceRow:
    """Create an instance of a deployed version and run it to its first wait (``timer``: the start timer that fired)."""
    if business_key and store.find_instance_by_key(session, row.process_key, business_key):
        raise InvalidTransition(f"process '{row.process_key}' already has an instance with key '{business_key}'")
    initial = {**(data or {}), **definition.settings}
    workflow = new_workflow(definition, initial)
    instance = store.add_instance(session, InstanceRow(
        definition_id=row.id, definition=row, process_key=row.process_key, business_key=business_key,
        status=InstanceStatus.RUNNING.value, state="", started_at=now, started_by=actor, updated_at=now,
        last_seq=0, last_hash=""))
    audit.record(session, EventKind.INSTANCE_STARTED, actor, now, instance=instance,
                 data={"process": row.process_key, "version": row.version, "business_key": business_key,
                       "data": initial})
    if timer is not None:
        audit.record(session, EventKind.TIMER_FIRED, SYSTEM_ACTOR, now, instance=instance, data=timer)
    with command_clock(session, now):
        _advance(session, instance, definition, workflow, actor, now, before={})
    return instance


def _workflow_to_change(session: Session, instance: InstanceRow) -> tuple[Definition, BpmnWorkflow]:
    """For a command that saves the state: the workflow kept from this instance's last save, else decoded."""
    kept = cache.take_workflow(session, instance)
    return (definition_of(instance.definition), kept) if kept is not None else load_workflow(instance)


def _save_state(session: Session, instance: InstanceRow, workflow: BpmnWorkflow) -> None:
    instance.state = snapshot.dump(workflow)
    cache.keep_workflow(session, instance, workflow)


def _check_may_start(org: Organisation, definition: Definition, actor: str) -> None:
    if definition.start_timer is not None:
        timer = definition.start_timer
        raise InvalidTransition(f"process '{definition.process_key}' starts by its timer '{timer['name']}' "
                                f"({timer['expression']}); the worker starts it, not a user")
    if definition.start_department and actor not in org.department(definition.start_department).members:
        raise Forbidden(f"process '{definition.process_key}' is started by department "
                        f"'{definition.start_department}'; '{actor}' is not a member of it")


def startable(session: Session, actor: str) -> list[DefinitionRow]:
    """The newest version of every deployed process the actor may start (by hand, not by timer), by process key."""
    org = organisation(session)
    org.user(actor)
    active = {row.process_key: row for row in store.list_definitions(session)
              if store.revision_of(session, row.id).status == revisions.RevisionStatus.ACTIVE.value}
    found = []
    for row in active.values():
        try:
            _check_may_start(org, definition_of(row), actor)
        except (Forbidden, InvalidTransition):
            continue
        found.append(row)
    return found


def start(session: Session, process_key: str, actor: str, now: datetime, data: dict[str, Any] | None = None,
          business_key: str | None = None, version: int | None = None) -> InstanceRow:
    """Start an instance of the active version of a process and run it to its first wait.

    ``data`` seeds the instance (the process's settings are added and win over it). When the start
    event sits in a lane, only members of that department may start the process. A process that
    starts by a timer is started by the worker, never by hand. Naming a ``version`` that is not the
    active one (a draft, an obsolete or a rejected revision) is refused, naming the active version.
    """
    org = organisation(session)
    org.user(actor)
    row = revisions.definition_to_start(session, process_key, version)
    definition = definition_of(row)
    _check_may_start(org, definition, actor)
    return _begin(session, row, definition, actor, now, data, business_key)


def start_scheduled(session: Session, schedule: ScheduleRow, due: datetime, now: datetime) -> InstanceRow:
    """Start the instance a schedule's occurrence ``due`` calls for (its business key names the occurrence).

    The start is recorded as ``instance_started`` by the system followed by the ``timer_fired``
    input of the start timer. The business key makes a second start of the same occurrence impossible.
    """
    row = schedule.definition
    key = f"{schedule.event}@{due.astimezone(timezone.utc):%Y-%m-%dT%H:%MZ}"
    return _begin(session, row, definition_of(row), SYSTEM_ACTOR, now, None, key,
                  timer={"timer": schedule.event, "due": due.isoformat()})


def fire_timers(session: Session, instance: InstanceRow, now: datetime) -> list[dict]:
    """Fire the instance's timers due before ``now`` and run it on; returns the ``timer_fired`` data recorded.

    Called by the worker for an instance whose ``timer_due_at`` has passed; an instance with nothing
    due (it moved on since it was claimed) is only rescheduled.
    """
    definition, workflow = load_workflow(instance)
    with command_clock(session, now):
        fired = _fire_due_timers(session, instance, definition, workflow, now)
        if fired:
            _save(session, instance, workflow, now)
        else:
            reschedule(session, instance, workflow)
    return fired


def task_label(task: TaskRow) -> str:
    """How messages name a task: ``task 7 'Review complaint' of instance 3``."""
    return f"task {task.id} '{task.title}' of instance {task.instance_id}"


def _active_task(session: Session, task_id: int, action: str) -> TaskRow:
    task = store.get_task(session, task_id)
    if task.status not in ACTIVE_TASK:
        by = f" by {task.completed_by} at {task.completed_at:%Y-%m-%d %H:%M}" if task.completed_by else ""
        raise InvalidTransition(f"cannot {action} {task_label(task)}: it is already {task.status}{by}")
    if task.instance.status != InstanceStatus.RUNNING.value:
        raise InvalidTransition(f"cannot {action} {task_label(task)}: instance is {task.instance.status}")
    return task


def _check_may_act(org: Organisation, actor: str, task: TaskRow) -> None:
    """A task is done by its department (its head when it needs the head), or by whoever it was escalated to."""
    org.user(actor)
    if actor != task.escalated_to:
        org.check_may_act(actor, task.department, task.role, task_label(task))


def claim(session: Session, task_id: int, actor: str, now: datetime) -> TaskRow:
    """Take an open task of one's department (or one escalated to oneself) so colleagues see it is handled."""
    task = _active_task(session, task_id, "claim")
    _check_may_act(organisation(session), actor, task)
    if task.assignee:
        raise InvalidTransition(f"cannot claim {task_label(task)}: it is already claimed by {task.assignee}")
    _check_duties(session, task, actor, "claim", now)
    _move(task, TaskStatus.CLAIMED, f"claim {task_label(task)}")
    task.assignee = actor
    _touch(task.instance, now)
    audit.record(session, EventKind.TASK_CLAIMED, actor, now, instance=task.instance, task_id=task.id,
                 data={"task": task.name})
    return task


def unclaim(session: Session, task_id: int, actor: str, now: datetime) -> TaskRow:
    """Give a claimed task back to the department's inbox (its assignee, the department head or its escalated owner may)."""
    task = _active_task(session, task_id, "unclaim")
    org = organisation(session)
    org.user(actor)
    if task.assignee is None:
        raise InvalidTransition(f"cannot unclaim {task_label(task)}: nobody has claimed it")
    if actor not in (task.assignee, org.department(task.department).head, task.escalated_to):
        raise Forbidden(f"cannot unclaim {task_label(task)}: it is claimed by {task.assignee}; "
                        f"only they or the head of '{task.department}' may release it")
    _move(task, TaskStatus.OPEN, f"unclaim {task_label(task)}")
    previous, task.assignee = task.assignee, None
    _touch(task.instance, now)
    audit.record(session, EventKind.TASK_UNCLAIMED, actor, now, instance=task.instance, task_id=task.id,
                 data={"task": task.name, "was_assignee": previous})
    return task


def _check_revision(session: Session, instance: InstanceRow, expected: int | None) -> None:
    """Refuse an action the user chose from an instance they read before someone else changed it."""
    if expected is None or instance.revision == expected:
        return
    last = store.events_of(session, instance.id)[-1]
    raise ConcurrentUpdate(f"instance {instance.id} was changed by someone else since you read it (revision "
                           f"{expected}, now {instance.revision}; last change: {last.kind} by {last.actor} at "
                           f"{last.at:%Y-%m-%d %H:%M}): reload it and try again")


def _touch(instance: InstanceRow, now: datetime) -> None:
    # Any change to an instance's tasks bumps its revision, so two users racing on one task collide.
    instance.updated_at = now


def rules_of(task: TaskRow) -> UserTaskInfo:
    """What the deployed procedure declares for a human task: routing, signature, separation of duties."""
    return definition_of(task.instance.definition).user_task(task.process, task.name)


def _check_duties(session: Session, task: TaskRow, actor: str, action: str, now: datetime) -> None:
    """Separation of duties: refuse (and have the history keep it) when the actor did a conflicting task."""
    conflicts = definition_of(task.instance.definition).conflicting_tasks(rules_of(task))
    if not conflicts:
        return
    for done in store.tasks_of_instance(session, task.instance_id, (TaskStatus.COMPLETED.value,)):
        if done.name in conflicts and done.completed_by == actor:
            raise Refusal(f"cannot {action} {task_label(task)}: '{actor}' did '{done.title}' (task {done.id}) "
                          f"in this instance, and the procedure requires a different person (separation of duties)",
                          task.instance_id, task.id, actor, now,
                          {"action": action, "task": task.name, "rule": "not_same_as",
                           "conflicts_with": {"task": done.name, "task_id": done.id}})


def _completable_task(session: Session, task_id: int, actor: str, now: datetime) -> TaskRow:
    """The task, if the actor may complete it now; InvalidTransition, Forbidden or Refusal saying why not."""
    task = _active_task(session, task_id, "complete")
    _check_may_act(organisation(session), actor, task)
    if task.assignee and actor not in (task.assignee, task.escalated_to):
        raise Forbidden(f"cannot complete {task_label(task)}: it is claimed by {task.assignee}")
    _check_duties(session, task, actor, "complete", now)
    return task


def complete(session: Session, task_id: int, actor: str, now: datetime, data: dict[str, Any],
             password: str | None = None, expected_revision: int | None = None) -> TaskRow:
    """Submit a task's form: validate it, complete the task, run the engine to the next wait.

    The actor must belong to the task's department (and head it when the task needs the head), or
    be the one the task was escalated to; a task claimed by someone else cannot be completed by
    anyone but them or its escalated owner; the actor must not have done a task the procedure
    separates from this one. A task that needs a signature takes the actor's password and records
    their signature bound to this completion. Timers that fell due before ``now`` fire first: if
    one of them withdrew this task, the completion is refused. With ``expected_revision``
    (the instance revision the user saw) a change by anyone since is refused with ConcurrentUpdate.
    """
    task = _completable_task(session, task_id, actor, now)
    _check_revision(session, task.instance, expected_revision)
    org = organisation(session)
    instance = task.instance
    definition, workflow = _workflow_to_change(session, instance)
    clean = definition.forms[task.form_key].validate(data)
    with command_clock(session, now):
        fired = _fire_due_timers(session, instance, definition, workflow, now)
        spiff_task = workflow.get_task_from_id(UUID(task.spiff_id))
        if spiff_task is None or spiff_task.state != TaskState.READY or not spiff_task.task_spec.manual:
            state = TaskState.get_name(spiff_task.state) if spiff_task is not None else "missing"
            why = f" after its timer {', '.join(repr(f['timer']) for f in fired)} fired" if fired else ""
            raise InvalidTransition(f"cannot complete {task_label(task)}: the workflow has it {state}{why}, "
                                    f"not READY")
        info = rules_of(task)
        if info.signature:
            signatures.authenticate(session, task, actor, password, now)
        before = {t.id: t.state for t in all_tasks(workflow)}
        spiff_task.data.update(clean)
        spiff_task.run()
        _move(task, TaskStatus.COMPLETED, f"complete {task_label(task)}")
        task.assignee = task.assignee or actor
        task.completed_at, task.completed_by, task.data = now, actor, clean
        task.escalate_at = None
        completion = audit.record(session, EventKind.TASK_COMPLETED, actor, now, instance=instance,
                                  task_id=task.id, data={"task": task.name, "form": task.form_key, "data": clean})
        if info.signature:
            signatures.sign(session, instance, task, completion, actor, org.user(actor).label,
                            signatures.meaning(info, clean), now)
        _advance(session, instance, definition, workflow, actor, now, before)
    return task


def cancel(session: Session, instance_id: int, actor: str, now: datetime, reason: str,
           expected_revision: int | None = None) -> InstanceRow:
    """Stop a running instance and withdraw its open tasks (its starter or any department head may).

    With ``expected_revision`` (the revision the user saw) a change by anyone since is refused with ConcurrentUpdate.
    """
    instance = store.get_instance(session, instance_id)
    _check_revision(session, instance, expected_revision)
    org = organisation(session)
    org.user(actor)
    if actor != instance.started_by and not org.is_head(actor):
        raise Forbidden(f"cannot cancel instance {instance_id}: only its starter ({instance.started_by}) "
                        f"or a department head may")
    if not reason.strip():
        raise InvalidTransition(f"cannot cancel instance {instance_id}: give a reason")
    _move(instance, InstanceStatus.CANCELLED, f"cancel instance {instance_id}")
    # The cause is recorded before its consequences, so a replay meets the cancellation first.
    audit.record(session, EventKind.INSTANCE_CANCELLED, actor, now, instance=instance, data={"reason": reason})
    for task in store.tasks_of_instance(session, instance_id, ACTIVE_TASK):
        _move(task, TaskStatus.CANCELLED, f"cancel {task_label(task)}")
        task.escalate_at = None
        audit.record(session, EventKind.TASK_CANCELLED, actor, now, instance=instance, task_id=task.id,
                     data={"task": task.name})
    _, workflow = _workflow_to_change(session, instance)
    workflow.cancel()
    _save_state(session, instance, workflow)
    instance.ended_at = instance.updated_at = now
    reschedule(session, instance)
    return instance


# --- reading ---------------------------------------------------------------------------------

def instance_data(instance: InstanceRow) -> dict[str, Any]:
    """The instance's current data: what its most recent step left (the final data once it has ended)."""
    _, workflow = load_workflow(instance)
    return current_data(workflow)


@dataclass(frozen=True)
class TaskView:
    """A task with what its assignee needs to see: the form, the data so far, the rules it is under.

    ``blocked`` says why the viewer may not complete the task now (done, claimed by someone
    else, needs the head, separation of duties); None when they may, or when no viewer was named.
    """

    task: TaskRow
    form: Any
    data: dict[str, Any]
    rules: UserTaskInfo
    blocked: str | None = None


def describe_task(session: Session, task_id: int, actor: str | None = None,
                  now: datetime | None = None) -> TaskView:
    """A task, its form, and the instance data as the task sees it (its submitted data once completed).

    With an ``actor``, nobody reads another department's task: Forbidden unless the actor is a
    member of the task's department or the one it was escalated to; ``blocked`` then tells whether
    they may complete it (at ``now``).
    """
    task = store.get_task(session, task_id)
    blocked = None
    if actor is not None:
        if actor != task.escalated_to:
            visible_departments(session, actor, task.department)
        try:
            _completable_task(session, task_id, actor, now)
        except (Forbidden, InvalidTransition) as err:
            blocked = str(err)
    _, workflow = load_workflow(task.instance)
    spiff_task = workflow.get_task_from_id(UUID(task.spiff_id))
    data = _public_data(spiff_task.data) if spiff_task is not None else {}
    return TaskView(task=task, form=form_of(session, task), data=data, rules=rules_of(task), blocked=blocked)


def form_of(session: Session, task: TaskRow) -> Form:
    """The form of ``task`` as it was given: for a task still open, the form of the version its instance runs
    on; for a completed one, the form of the version it was completed under (an instance migrated since keeps
    its earlier tasks' forms, even those the new version no longer has)."""
    current = task.instance.definition
    row = current
    if task.status == TaskStatus.COMPLETED.value:
        completed = store.task_event(session, task.id, EventKind.TASK_COMPLETED.value)
        if completed is not None and completed.definition_hash not in (None, current.content_hash):
            row = store.find_definition_by_hash(session, task.instance.process_key, completed.definition_hash) or current
    return definition_of(row).forms[task.form_key]


def visible_instance(session: Session, instance_id: int, actor: str) -> InstanceRow:
    """The instance, if the actor may read it: its starter, a member of a department it has (had) a task
    in, or someone one of its tasks was escalated to.

    Raises NotFound for an unknown instance or user, Forbidden for anyone else.
    """
    instance = store.get_instance(session, instance_id)
    org = organisation(session)
    org.user(actor)
    tasks = store.tasks_of_instance(session, instance_id)
    involved = {task.department for task in tasks}
    escalated_to = {task.escalated_to for task in tasks}
    if actor != instance.started_by and actor not in escalated_to and not involved & set(org.departments_of(actor)):
        raise Forbidden(f"'{actor}' may not see instance {instance_id}: none of their departments has a task in it "
                        f"(departments involved: {', '.join(sorted(involved)) or 'none'})")
    return instance


def visible_departments(session: Session, actor: str, department: str | None) -> list[str]:
    """Departments whose inbox the actor may read: all of theirs, or the one asked for if they belong to it."""
    org = organisation(session)
    org.user(actor)
    own = org.departments_of(actor)
    if department is None:
        return own
    org.department(department)
    if department not in own:
        raise Forbidden(f"'{actor}' is not a member of department '{department}' and cannot see its tasks")
    return [department]
