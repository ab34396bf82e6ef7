"""Runtime: start instances, claim and complete their tasks, run the engine, cancel.

Each public function here is one user command. It takes a Session and ``now``, checks everything
before it changes anything, and leaves the caller to commit: the instance's new state, its human
tasks and its history events are written in that one transaction or not at all. This module
holds the status vocabularies, the table of allowed moves, and the one function that moves a
status.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy.orm import Session
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.util.task import TaskState

from . import audit, definitions, snapshot, store
from .audit import EventKind
from .definitions import Definition
from .directory import Organisation
from .errors import DefinitionError, ExpressionError, Forbidden, InvalidTransition, NotFound
from .sandbox import make_script_engine
from .store import DefinitionRow, InstanceRow, OrganisationRow, TaskRow

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
_organisations: dict[str, Organisation] = {}
_SCRIPT_ENGINE = make_script_engine()


def definition_of(row: DefinitionRow) -> Definition:
    """The parsed Definition of a deployed version (parsed once per process, then cached by content hash)."""
    found = _definitions.get(row.content_hash)
    if found is None:
        found = _definitions[row.content_hash] = definitions.from_stored(row.artifacts, row.manifest)
    return found


def organisation(session: Session) -> Organisation:
    """The organisation in force; raises NotFound when none has been loaded yet."""
    row = store.current_organisation(session)
    if row is None:
        raise NotFound("no organisation is loaded yet: run 'qproc org load org.yaml'")
    key = audit.canonical(row.content)
    found = _organisations.get(key)
    if found is None:
        found = _organisations[key] = Organisation.from_dict(row.content)
    return found


# --- organisation and deployment -------------------------------------------------------------

def load_organisation(session: Session, path: Path, actor: str, now: datetime) -> Organisation:
    """Validate an organisation file and put it in force; recorded in the system history."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise NotFound(f"cannot read organisation file {path}: {err.strerror}") from None
    org = Organisation.from_yaml(text, str(path))
    store.add_organisation(session, OrganisationRow(loaded_at=now, loaded_by=actor, content=org.to_dict()))
    audit.record(session, EventKind.ORGANISATION_LOADED, actor, now,
                 data={"file": path.name, "departments": len(org.departments), "users": len(org.users)})
    return org


@dataclass(frozen=True)
class Deployment:
    """What deploying one process did: its version and whether that version is new."""

    process_key: str
    name: str
    version: int
    content_hash: str
    created: bool


def deploy(session: Session, paths: list[Path], forms_dir: Path, actor: str, now: datetime,
           settings_file: Path | None = None) -> list[Deployment]:
    """Check and deploy BPMN/DMN files: each executable process whose content is new becomes its next version.

    Identical content is a no-op (``created`` False). Nothing is written if any file fails its checks.
    """
    org = organisation(session)
    org.user(actor)
    results = []
    for definition in definitions.prepare(paths, org, forms_dir, settings_file):
        existing = store.find_definition_by_hash(session, definition.process_key, definition.content_hash)
        if existing is not None:
            results.append(Deployment(existing.process_key, existing.name, existing.version,
                                      existing.content_hash, created=False))
            continue
        row = store.add_definition(session, DefinitionRow(
            process_key=definition.process_key, name=definition.name,
            version=store.latest_version_number(session, definition.process_key) + 1,
            content_hash=definition.content_hash, manifest=definition.manifest, artifacts=definition.artifacts,
            deployed_at=now, deployed_by=actor))
        _definitions.setdefault(row.content_hash, definition)
        audit.record(session, EventKind.DEFINITION_DEPLOYED, actor, now, definition_hash=row.content_hash,
                     data={"process": row.process_key, "version": row.version, "files": sorted(row.artifacts)})
        results.append(Deployment(row.process_key, row.name, row.version, row.content_hash, created=True))
    return results


# --- running ---------------------------------------------------------------------------------

def _all_tasks(workflow: BpmnWorkflow) -> list:
    tasks = list(workflow.tasks.values())
    for sub in workflow.subprocesses.values():
        tasks.extend(sub.tasks.values())
    return tasks


def _step_label(task) -> str:
    spec = task.task_spec
    return f"'{spec.bpmn_name or spec.bpmn_id}' ({spec.bpmn_id})" if spec.bpmn_id else f"'{spec.name}'"


def _run_engine(instance: InstanceRow, workflow: BpmnWorkflow) -> None:
    try:
        workflow.do_engine_steps()
    except WorkflowException as err:
        task = getattr(err, "task", None)
        where = f" at step {_step_label(task)}" if task is not None else ""
        cause = f" ({err.__context__})" if err.__context__ is not None and str(err.__context__) not in str(err) else ""
        raise ExpressionError(f"instance {instance.id}{where}: {err}{cause}") from None


def _record_steps(session: Session, instance: InstanceRow, workflow: BpmnWorkflow, before: dict, actor: str,
                  now: datetime) -> None:
    """One event per automatic step (gateway, script, event) that completed in this command."""
    for task in _all_tasks(workflow):
        spec = task.task_spec
        if (task.state != TaskState.COMPLETED or before.get(task.id) == TaskState.COMPLETED
                or spec.bpmn_id is None or spec.manual):
            continue
        data = {"step": spec.bpmn_id, "name": spec.bpmn_name, "type": type(spec).__name__}
        if len(spec.outputs) > 1:
            data["next"] = sorted(c.task_spec.bpmn_id or c.task_spec.name for c in task.children
                                  if c.state & TaskState.DEFINITE_MASK or c.state & TaskState.FINISHED_MASK)
        audit.record(session, EventKind.STEP_COMPLETED, actor, now, instance=instance, data=data)


def _sync_tasks(session: Session, instance: InstanceRow, definition: Definition, workflow: BpmnWorkflow,
                actor: str, now: datetime) -> None:
    """Make the instance's human tasks match the workflow's ready user tasks: create new, cancel vanished."""
    ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
    for row in store.tasks_of_instance(session, instance.id, ACTIVE_TASK):
        if ready.pop(row.spiff_id, None) is None:
            _move(row, TaskStatus.CANCELLED, f"cancel task {row.id}")
            audit.record(session, EventKind.TASK_CANCELLED, actor, now, instance=instance, task_id=row.id,
                         data={"task": row.name})
    for spiff_id, task in ready.items():
        info = definition.user_task(task.workflow.spec.name, task.task_spec.bpmn_id)
        row = store.add_task(session, TaskRow(
            instance_id=instance.id, spiff_id=spiff_id, process=info.process, name=info.bpmn_id, title=info.title,
            department=info.department, role=info.role, form_key=info.form, status=TaskStatus.OPEN.value,
            created_at=now))
        audit.record(session, EventKind.TASK_CREATED, actor, now, instance=instance, task_id=row.id,
                     data={"task": info.bpmn_id, "title": info.title, "department": info.department,
                           "role": info.role, "form": info.form})


def _advance(session: Session, instance: InstanceRow, definition: Definition, workflow: BpmnWorkflow,
             actor: str, now: datetime, before: dict) -> None:
    """Run the engine to the next wait, then record steps, sync tasks, finish if ended, and save the state."""
    _run_engine(instance, workflow)
    _record_steps(session, instance, workflow, before, actor, now)
    _sync_tasks(session, instance, definition, workflow, actor, now)
    if workflow.is_completed():
        _move(instance, InstanceStatus.COMPLETED, f"complete instance {instance.id}")
        instance.ended_at = now
        audit.record(session, EventKind.INSTANCE_COMPLETED, actor, now, instance=instance,
                     data={"data": _public_data(workflow.data)})
    instance.state = snapshot.dump(workflow)
    instance.updated_at = now


def _public_data(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "data_objects"}


def _load_workflow(instance: InstanceRow) -> tuple[Definition, BpmnWorkflow]:
    definition = definition_of(instance.definition)
    workflow = snapshot.load(instance.state, definition.spec, definition.subprocess_specs, _SCRIPT_ENGINE)
    return definition, workflow


def start(session: Session, process_key: str, actor: str, now: datetime, data: dict[str, Any] | None = None,
          business_key: str | None = None) -> InstanceRow:
    """Start an instance of the newest version of a process and run it to its first wait.

    ``data`` seeds the instance (the process's settings are added and win over it). When the start
    event sits in a lane, only members of that department may start the process.
    """
    org = organisation(session)
    org.user(actor)
    row = store.latest_definition(session, process_key)
    definition = definition_of(row)
    if definition.start_department and actor not in org.department(definition.start_department).members:
        raise Forbidden(f"process '{process_key}' is started by department '{definition.start_department}'; "
                        f"'{actor}' is not a member of it")
    if business_key and store.find_instance_by_key(session, process_key, business_key):
        raise InvalidTransition(f"process '{process_key}' already has an instance with key '{business_key}'")
    initial = {**(data or {}), **definition.settings}
    workflow = BpmnWorkflow(definition.spec, definition.subprocess_specs, script_engine=_SCRIPT_ENGINE)
    workflow.task_tree.data.update(initial)
    instance = store.add_instance(session, InstanceRow(
        definition_id=row.id, definition=row, process_key=process_key, business_key=business_key,
        status=InstanceStatus.RUNNING.value, state="", started_at=now, started_by=actor, updated_at=now,
        last_seq=0, last_hash=""))
    audit.record(session, EventKind.INSTANCE_STARTED, actor, now, instance=instance,
                 data={"process": process_key, "version": row.version, "business_key": business_key,
                       "data": initial})
    _advance(session, instance, definition, workflow, actor, now, before={})
    return instance


def _task_label(task: TaskRow) -> str:
    return f"task {task.id} '{task.title}' of instance {task.instance_id}"


def _active_task(session: Session, task_id: int, action: str) -> TaskRow:
    task = store.get_task(session, task_id)
    if task.status not in ACTIVE_TASK:
        by = f" by {task.completed_by} at {task.completed_at:%Y-%m-%d %H:%M}" if task.completed_by else ""
        raise InvalidTransition(f"cannot {action} {_task_label(task)}: it is already {task.status}{by}")
    if task.instance.status != InstanceStatus.RUNNING.value:
        raise InvalidTransition(f"cannot {action} {_task_label(task)}: instance is {task.instance.status}")
    return task


def claim(session: Session, task_id: int, actor: str, now: datetime) -> TaskRow:
    """Take an open task of one's department so colleagues see it is being handled."""
    task = _active_task(session, task_id, "claim")
    organisation(session).check_may_act(actor, task.department, task.role, _task_label(task))
    if task.assignee:
        raise InvalidTransition(f"cannot claim {_task_label(task)}: it is already claimed by {task.assignee}")
    _move(task, TaskStatus.CLAIMED, f"claim {_task_label(task)}")
    task.assignee = actor
    _touch(task.instance, now)
    audit.record(session, EventKind.TASK_CLAIMED, actor, now, instance=task.instance, task_id=task.id,
                 data={"task": task.name})
    return task


def unclaim(session: Session, task_id: int, actor: str, now: datetime) -> TaskRow:
    """Give a claimed task back to the department's inbox (its assignee or the department head may)."""
    task = _active_task(session, task_id, "unclaim")
    org = organisation(session)
    org.user(actor)
    if task.assignee is None:
        raise InvalidTransition(f"cannot unclaim {_task_label(task)}: nobody has claimed it")
    if actor not in (task.assignee, org.department(task.department).head):
        raise Forbidden(f"cannot unclaim {_task_label(task)}: it is claimed by {task.assignee}; "
                        f"only they or the head of '{task.department}' may release it")
    _move(task, TaskStatus.OPEN, f"unclaim {_task_label(task)}")
    previous, task.assignee = task.assignee, None
    _touch(task.instance, now)
    audit.record(session, EventKind.TASK_UNCLAIMED, actor, now, instance=task.instance, task_id=task.id,
                 data={"task": task.name, "was_assignee": previous})
    return task


def _touch(instance: InstanceRow, now: datetime) -> None:
    # Any change to an instance's tasks bumps its revision, so two users racing on one task collide.
    instance.updated_at = now


def complete(session: Session, task_id: int, actor: str, now: datetime, data: dict[str, Any]) -> TaskRow:
    """Submit a task's form: validate it, complete the task, run the engine to the next wait.

    The actor must belong to the task's department (and head it when the task needs the head);
    a task claimed by someone else cannot be completed by anyone but them.
    """
    task = _active_task(session, task_id, "complete")
    organisation(session).check_may_act(actor, task.department, task.role, _task_label(task))
    if task.assignee and task.assignee != actor:
        raise Forbidden(f"cannot complete {_task_label(task)}: it is claimed by {task.assignee}")
    instance = task.instance
    definition, workflow = _load_workflow(instance)
    clean = definition.forms[task.form_key].validate(data)
    spiff_task = workflow.get_task_from_id(UUID(task.spiff_id))
    if spiff_task is None or spiff_task.state != TaskState.READY or not spiff_task.task_spec.manual:
        state = TaskState.get_name(spiff_task.state) if spiff_task is not None else "missing"
        raise InvalidTransition(f"cannot complete {_task_label(task)}: the workflow has it {state}, not READY")
    before = {t.id: t.state for t in _all_tasks(workflow)}
    spiff_task.data.update(clean)
    spiff_task.run()
    _move(task, TaskStatus.COMPLETED, f"complete {_task_label(task)}")
    task.assignee = task.assignee or actor
    task.completed_at, task.completed_by, task.data = now, actor, clean
    audit.record(session, EventKind.TASK_COMPLETED, actor, now, instance=instance, task_id=task.id,
                 data={"task": task.name, "form": task.form_key, "data": clean})
    _advance(session, instance, definition, workflow, actor, now, before)
    return task


def cancel(session: Session, instance_id: int, actor: str, now: datetime, reason: str) -> InstanceRow:
    """Stop a running instance and withdraw its open tasks (its starter or any department head may)."""
    instance = store.get_instance(session, instance_id)
    org = organisation(session)
    org.user(actor)
    if actor != instance.started_by and not org.is_head(actor):
        raise Forbidden(f"cannot cancel instance {instance_id}: only its starter ({instance.started_by}) "
                        f"or a department head may")
    if not reason.strip():
        raise InvalidTransition(f"cannot cancel instance {instance_id}: give a reason")
    _move(instance, InstanceStatus.CANCELLED, f"cancel instance {instance_id}")
    for task in store.tasks_of_instance(session, instance_id, ACTIVE_TASK):
        _move(task, TaskStatus.CANCELLED, f"cancel {_task_label(task)}")
        audit.record(session, EventKind.TASK_CANCELLED, actor, now, instance=instance, task_id=task.id,
                     data={"task": task.name})
    _, workflow = _load_workflow(instance)
    workflow.cancel()
    instance.state = snapshot.dump(workflow)
    instance.ended_at = instance.updated_at = now
    audit.record(session, EventKind.INSTANCE_CANCELLED, actor, now, instance=instance, data={"reason": reason})
    return instance


# --- reading ---------------------------------------------------------------------------------

def instance_data(instance: InstanceRow) -> dict[str, Any]:
    """The instance's current data: what its most recent step left (the final data once it has ended)."""
    _, workflow = _load_workflow(instance)
    if workflow.is_completed():
        return _public_data(workflow.data)
    source = workflow.last_task or workflow.task_tree
    return _public_data(source.data)


@dataclass(frozen=True)
class TaskView:
    """A task with what its assignee needs to see: the form and the data so far."""

    task: TaskRow
    form: Any
    data: dict[str, Any]


def describe_task(session: Session, task_id: int) -> TaskView:
    """A task, its form, and the instance data as the task sees it (its submitted data once completed)."""
    task = store.get_task(session, task_id)
    definition, workflow = _load_workflow(task.instance)
    spiff_task = workflow.get_task_from_id(UUID(task.spiff_id))
    data = _public_data(spiff_task.data) if spiff_task is not None else {}
    return TaskView(task=task, form=definition.forms[task.form_key], data=data)


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
