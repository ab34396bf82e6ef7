"""Migration: move running instances to the active version of their process, deliberately and on the record.

Instances finish on the version they started on unless someone migrates them. :func:`migrate`
moves one instance, :func:`migrate_all` every running instance of one version, each in one
transaction (a refused one changes nothing). Spiff's own migration (``SpiffWorkflow.bpmn.util.diff``)
does the alignment; around it this module

- refuses when a task the instance is waiting on, or has yet to reach, is removed by the target
  version (Spiff would leave the instance stuck), naming the task;
- keeps what Spiff resets: a waiting timer's due time (Spiff restarts it from now) and the data of
  tasks waiting for a person (Spiff resets it from the parent); task rows keep their deadlines,
  escalation state and claims, and follow the new version's department, title and form;
- records an ``instance_migrated`` input (who, from which version to which, why, the timers kept),
  so a replay (:mod:`engine.replay`) re-runs the old version up to it, migrates, and goes on with the new.
"""

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from . import audit, revisions, runtime, store
from .audit import EventKind
from .definitions import Definition
from .errors import Forbidden, InvalidTransition
from .store import InstanceRow

_REGISTRY = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
_WAITING = TaskState.READY | TaskState.WAITING


@dataclass(frozen=True)
class Plan:
    """What migrating one instance would do: ``blocked_by`` names the removed tasks it still needs (empty: allowed)."""

    instance_id: int
    business_key: str | None
    from_version: int
    to_version: int
    waiting_on: list[str]
    blocked_by: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        """Whether the migration may go ahead."""
        return not self.blocked_by

    def to_dict(self) -> dict:
        """The plan as JSON-ready data."""
        return {"instance": self.instance_id, "business_key": self.business_key, "from": self.from_version,
                "to": self.to_version, "waiting_on": self.waiting_on, "blocked_by": self.blocked_by,
                "allowed": self.allowed}


def _label(task) -> str:
    spec = task.task_spec
    return f"'{spec.bpmn_name or spec.bpmn_id or spec.name}' ({spec.bpmn_id or spec.name})"


def blocking_tasks(workflow: BpmnWorkflow, target: Definition) -> list[str]:
    """Tasks of the workflow not yet finished (waiting, or still ahead of it) whose step the target removes."""
    top, subs = diff_workflow(_REGISTRY, workflow, target.spec, target.subprocess_specs)
    removed = list(top.removed)
    blocked = []
    for sp_id, sub_diff in subs.items():
        if sub_diff is None:
            blocked.append(f"called process '{workflow.subprocesses[sp_id].spec.name}'")
        else:
            removed.extend(sub_diff.removed)
    blocked.extend(_label(t) + f" ({TaskState.get_name(t.state).lower()})" for t in removed
                   if not t.has_state(TaskState.FINISHED_MASK) and t.task_spec.bpmn_id)
    return blocked


def move_workflow(workflow: BpmnWorkflow, target: Definition) -> list[dict]:
    """Put the workflow on the target version's specs with Spiff's migration, then give back what Spiff reset:
    waiting timers' due times and waiting tasks' data. Returns the waiting timers, ``{timer, due}``, due as before.

    Call only when :func:`blocking_tasks` is empty, inside the command clock.
    """
    top, subs = diff_workflow(_REGISTRY, workflow, target.spec, target.subprocess_specs)
    saved = {task.id: (deepcopy(task.data), deepcopy(task.internal_data.get("event_value")))
             for task in runtime.all_tasks(workflow) if task.has_state(_WAITING)}
    moved = [(workflow, target.spec, top)]
    for sp_id, sub_diff in subs.items():
        sub = workflow.subprocesses[sp_id]
        moved.append((sub, target.subprocess_specs[sub.spec.name], sub_diff))
    for process, spec, process_diff in moved:
        last = process.last_task.id if process.last_task is not None else None
        migrate_workflow(process_diff, process, spec)
        # Spiff looks the last task up among the task ids by the task itself, so it always drops it;
        # the current data (what ``show`` and the next steps read) comes from it: put it back.
        process.last_task = process.tasks.get(last)
    workflow.subprocess_specs = target.subprocess_specs
    for task in runtime.all_tasks(workflow):
        if task.id not in saved or not task.has_state(_WAITING):
            continue
        task.data, event_value = saved[task.id]
        if isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition) and event_value:
            task.internal_data["event_value"] = event_value
    return runtime.timer_schedule(workflow)


def _plan(session: Session, instance: InstanceRow, to_version: int) -> tuple[Plan, BpmnWorkflow, Definition]:
    if instance.status != runtime.InstanceStatus.RUNNING.value:
        raise InvalidTransition(f"cannot migrate instance {instance.id}: it is {instance.status}")
    current = instance.definition.version
    if to_version == current:
        raise InvalidTransition(f"cannot migrate instance {instance.id}: it already runs on version {current}")
    target_row = store.get_definition(session, instance.process_key, to_version)
    revision = store.revision_of(session, target_row.id)
    if revision.status != revisions.RevisionStatus.ACTIVE.value:
        active = revisions.active_revision(session, instance.process_key)
        raise InvalidTransition(f"cannot migrate instance {instance.id} to {instance.process_key} version {to_version} "
                                f"({revision.label}): it is {revision.status}; instances migrate only to the active "
                                f"version, {active.definition.version} ({active.label})")
    _, workflow = runtime.load_workflow(instance)
    target = runtime.definition_of(target_row)
    waiting = [name for _, name in store.active_task_names(session, instance.id)]
    plan = Plan(instance.id, instance.business_key, current, to_version, waiting, blocking_tasks(workflow, target))
    return plan, workflow, target


def _check_may_migrate(session: Session, actor: str, what: str, reason: str, dry_run: bool) -> None:
    org = runtime.organisation(session)
    org.user(actor)
    if not org.is_head(actor):
        raise Forbidden(f"cannot migrate {what}: only a department head may move instances between versions")
    if not dry_run and not reason.strip():
        raise InvalidTransition(f"cannot migrate {what}: give a reason (--reason)")


def _refusal(plan: Plan) -> str:
    return (f"cannot migrate instance {plan.instance_id} from version {plan.from_version} to {plan.to_version}: "
            f"version {plan.to_version} removes {', '.join(plan.blocked_by)}, which the instance has not finished")


def migrate(session: Session, instance_id: int, to_version: int, actor: str, now: datetime, reason: str,
            dry_run: bool = False) -> Plan:
    """Move a running instance to the active version ``to_version`` (a department head, with a reason).

    With ``dry_run`` only the plan is returned and nothing changes. Refused (InvalidTransition naming
    the tasks) when the target removes a task the instance waits on or has yet to reach.
    """
    instance = store.get_instance(session, instance_id)
    _check_may_migrate(session, actor, f"instance {instance_id}", reason, dry_run)
    plan, workflow, target = _plan(session, instance, to_version)
    if dry_run:
        return plan
    if not plan.allowed:
        raise InvalidTransition(_refusal(plan))
    _apply(session, instance, workflow, target, actor, now, reason)
    return plan


def migrate_all(session: Session, process_key: str, from_version: int, to_version: int, actor: str, now: datetime,
                reason: str, dry_run: bool = False) -> list[Plan]:
    """Move every running instance of one version to the active version ``to_version``: all of them, or
    (when any of them is blocked) none, the refusal naming each blocked instance and task."""
    store.get_definition(session, process_key, from_version)
    _check_may_migrate(session, actor, f"{process_key} version {from_version}", reason, dry_run)
    found = [(instance, *_plan(session, instance, to_version))
             for instance in store.running_instances_of(session, process_key, from_version)]
    plans = [plan for _, plan, _, _ in found]
    if dry_run:
        return plans
    blocked = [plan for plan in plans if not plan.allowed]
    if blocked:
        raise InvalidTransition("; ".join(_refusal(plan) for plan in blocked) + f" (none of the {len(plans)} "
                                f"instances was migrated)")
    for instance, _, workflow, target in found:
        _apply(session, instance, workflow, target, actor, now, reason)
    return plans


def _apply(session: Session, instance: InstanceRow, workflow: BpmnWorkflow, target: Definition, actor: str,
           now: datetime, reason: str) -> None:
    source = instance.definition
    target_row = store.find_definition_by_hash(session, instance.process_key, target.content_hash)
    with runtime.command_clock(session, now):
        before = {t.id: t.state for t in runtime.all_tasks(workflow)}
        kept = move_workflow(workflow, target)
        moved = _follow_routing(session, instance, target)
        # Recorded under the version it leaves, so a replay meets it while still running that version.
        audit.record(session, EventKind.INSTANCE_MIGRATED, actor, now, instance=instance,
                     definition_hash=source.content_hash,
                     data={"from": source.version, "to": target_row.version, "from_hash": source.content_hash,
                           "to_hash": target_row.content_hash, "reason": reason, "timers_kept": kept,
                           "tasks_moved": moved})
        instance.definition_id, instance.definition = target_row.id, target_row
        runtime.continue_migrated(session, instance, target, workflow, actor, now, before)


def _follow_routing(session: Session, instance: InstanceRow, target: Definition) -> list[dict]:
    """Open tasks take the target version's department, title, role and form; returns those whose department moved."""
    moved = []
    for row in store.tasks_of_instance(session, instance.id, runtime.ACTIVE_TASK):
        if f"{row.process}/{row.name}" not in target.manifest["user_tasks"]:
            continue
        info = target.user_task(row.process, row.name)
        if info.department != row.department:
            moved.append({"task": row.name, "from": row.department, "to": info.department})
        row.department, row.title, row.role, row.form_key = info.department, info.title, info.role, info.form
    return moved
