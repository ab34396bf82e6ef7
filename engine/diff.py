"""Diff: what a new version of a procedure changes, in the process owner's words.

:func:`compare` lines up two deployed (or about to be deployed) Definitions of one process by the
BPMN ids of their elements and says, one sentence per change: steps added, removed or renamed (same
id, new name); steps moved to another department (lane); forms changed (fields added, removed, made
required or optional, choices changed; a task given another form); deadlines and timers changed;
gateway conditions changed; process settings changed. Steps of called processes are compared too.
:func:`versions` compares two deployed versions; :func:`preview` compares files about to be deployed
with the active version and lists the running instances the change would affect.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from . import definitions, migration, runtime, store
from .definitions import Definition
from .errors import NotFound
from .forms import Field, Form

_KINDS = {"UserTask": "user task", "ExclusiveGateway": "decision", "InclusiveGateway": "decision",
          "ParallelGateway": "parallel split/join", "ScriptTask": "automatic step", "CallActivity": "sub-process",
          "BusinessRuleTask": "decision table", "ManualTask": "manual task", "StartEvent": "start",
          "EndEvent": "end", "BoundaryEvent": "boundary event", "IntermediateCatchEvent": "wait",
          "IntermediateThrowEvent": "event", "SubWorkflowTask": "sub-process", "TransactionSubprocess": "sub-process"}


@dataclass(frozen=True)
class Change:
    """One change between two versions: its kind, the step or form it concerns, and the sentence saying it."""

    kind: str
    subject: str
    text: str

    def to_dict(self) -> dict[str, str]:
        """The change as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class _Step:
    """What the diff compares of one BPMN element."""

    process: str
    bpmn_id: str
    name: str | None
    kind: str
    lane: str | None
    inputs: tuple[str, ...]
    timer: str | None
    conditions: tuple[tuple[str, str], ...]  # (target step, condition expression)

    @property
    def label(self) -> str:
        return f"'{self.name}' ({self.bpmn_id})" if self.name else f"'{self.bpmn_id}'"


def _readable(spec_name: str, specs: dict) -> str:
    """The BPMN id of a task spec Spiff may have wrapped (a task with boundary events becomes a split)."""
    spec = specs.get(spec_name)
    if spec is not None and spec.bpmn_id:
        return spec.bpmn_id
    return spec_name.split(".")[0]


def _steps(definition: Definition) -> dict[tuple[str, str], _Step]:
    found = {}
    for process_spec in (definition.spec, *definition.subprocess_specs.values()):
        specs = process_spec.task_specs
        for spec in specs.values():
            if not spec.bpmn_id:
                continue
            timer = getattr(spec, "event_definition", None)
            conditions = tuple(sorted((_readable(target, specs), cond.args[0])
                                      for cond, target in getattr(spec, "cond_task_specs", ()) if cond is not None))
            inputs = tuple(sorted({_readable(i.name, specs) for i in spec.inputs} - {"Start"}))
            found[(process_spec.name, spec.bpmn_id)] = _Step(
                process=process_spec.name, bpmn_id=spec.bpmn_id, name=spec.bpmn_name,
                kind=_KINDS.get(type(spec).__name__, type(spec).__name__), lane=spec.lane, inputs=inputs,
                timer=timer.expression if isinstance(timer, TimerEventDefinition) else None, conditions=conditions)
    return found


def compare(old: Definition, new: Definition) -> list[Change]:
    """Every change from ``old`` to ``new`` (two versions of one process), in the order a reader walks them."""
    before, after = _steps(old), _steps(new)
    names = {key[1]: step.label for key, step in {**before, **after}.items()}
    changes: list[Change] = []
    for key in after.keys() - before.keys():
        step = after[key]
        where = f" in {step.lane}" if step.lane else ""
        follows = f", after {', '.join(names.get(i, repr(i)) for i in step.inputs)}" if step.inputs else ""
        changes.append(Change("step_added", step.bpmn_id, f"Step added: {step.label}, {step.kind}{where}{follows}."))
    for key in before.keys() - after.keys():
        step = before[key]
        where = f" (was in {step.lane})" if step.lane else ""
        changes.append(Change("step_removed", step.bpmn_id, f"Step removed: {step.label}, {step.kind}{where}."))
    for key in sorted(before.keys() & after.keys()):
        changes.extend(_step_changes(before[key], after[key], names))
    changes.extend(_task_changes(old, new, names))
    changes.extend(_form_changes(old.forms, new.forms))
    changes.extend(_setting_changes(old.settings, new.settings))
    return sorted(changes, key=lambda c: (_ORDER.index(c.kind), c.subject, c.text))


_DONE_BY_PEOPLE = ("user task", "manual task")
_ORDER = ("step_added", "step_removed", "step_renamed", "department_changed", "form_changed", "field_added",
          "field_removed", "field_required", "field_optional", "choices_changed", "deadline_changed",
          "timer_changed", "condition_changed", "setting_changed")


def _step_changes(old: _Step, new: _Step, names: dict[str, str]) -> list[Change]:
    changes = []
    if old.name != new.name:
        changes.append(Change("step_renamed", new.bpmn_id,
                              f"Step renamed: '{old.name or old.bpmn_id}' is now '{new.name or new.bpmn_id}' "
                              f"({new.bpmn_id})."))
    if old.lane != new.lane and new.kind in _DONE_BY_PEOPLE:  # gateways and events follow the tasks around them
        changes.append(Change("department_changed", new.bpmn_id,
                              f"Department changed: {new.label} moves from {old.lane or 'no department'} "
                              f"to {new.lane or 'no department'}."))
    if old.timer != new.timer:
        changes.append(Change("timer_changed", new.bpmn_id,
                              f"Timer changed: {new.label} waits {new.timer} instead of {old.timer}."))
    was, now = dict(old.conditions), dict(new.conditions)
    for target in sorted(was.keys() | now.keys()):
        if was.get(target) != now.get(target):
            rule = (f"now `{now[target]}`" if target in now else "no condition now")
            before = f"`{was[target]}`" if target in was else "no condition"
            changes.append(Change("condition_changed", new.bpmn_id,
                                  f"Condition changed: at {new.label} the way to {names.get(target, repr(target))} "
                                  f"is {rule} (was {before})."))
    return changes


def _task_changes(old: Definition, new: Definition, names: dict[str, str]) -> list[Change]:
    """Form and deadline changes of user tasks present in both versions (their routing facts in the manifests)."""
    changes = []
    before, after = old.manifest["user_tasks"], new.manifest["user_tasks"]
    for key in sorted(before.keys() & after.keys()):
        was, now = before[key], after[key]
        label = names.get(now["bpmn_id"], now["bpmn_id"])
        if was["form"] != now["form"]:
            changes.append(Change("form_changed", now["bpmn_id"],
                                  f"Form changed: {label} uses form '{now['form']}' instead of '{was['form']}'."))
        deadline = ("due", "due_in", "due_from", "due_by")
        if any(was.get(k) != now.get(k) for k in deadline):
            changes.append(Change("deadline_changed", now["bpmn_id"],
                                  f"Deadline changed: {label} is due {_due(now)} (was {_due(was)})."))
    return changes


def _due(task: dict[str, Any]) -> str:
    if not task.get("due") and not task.get("due_by"):
        return "without a deadline"
    parts = [f"{task['due']} ({task.get('due_in')} time) from {task.get('due_from')}"] if task.get("due") else []
    if task.get("due_by"):
        parts.append(f"by {task['due_by']}")
    return ", ".join(parts)


def _form_changes(old: dict[str, Form], new: dict[str, Form]) -> list[Change]:
    changes = []
    for key in sorted(old.keys() & new.keys()):
        was, now = {f.name: f for f in old[key].fields}, {f.name: f for f in new[key].fields}
        for name in now.keys() - was.keys():
            need = "required" if now[name].required else "optional"
            changes.append(Change("field_added", key, f"Form '{key}': field '{name}' added ({need})."))
        for name in was.keys() - now.keys():
            changes.append(Change("field_removed", key, f"Form '{key}': field '{name}' removed."))
        for name in sorted(was.keys() & now.keys()):
            changes.extend(_field_changes(key, was[name], now[name]))
    return changes


def _field_changes(form: str, old: Field, new: Field) -> list[Change]:
    changes = []
    if old.required != new.required:
        kind, word = ("field_required", "made required") if new.required else ("field_optional", "made optional")
        changes.append(Change(kind, form, f"Form '{form}': field '{new.name}' {word}."))
    was, now = {c.value for c in old.choices}, {c.value for c in new.choices}
    if was != now:
        added, removed = sorted(now - was), sorted(was - now)
        said = "; ".join(part for part in (f"added {', '.join(added)}" if added else "",
                                           f"removed {', '.join(removed)}" if removed else "") if part)
        changes.append(Change("choices_changed", form, f"Form '{form}': choices of field '{new.name}' changed: {said}."))
    return changes


def _setting_changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    return [Change("setting_changed", key, f"Setting '{key}': {new.get(key, 'removed')} (was {old.get(key, 'unset')}).")
            for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)]


# --- versions in the database ----------------------------------------------------------------

@dataclass(frozen=True)
class VersionDiff:
    """The changes from one version of a process to another (``old_version`` None: a new process)."""

    process_key: str
    old_version: int | None
    new_version: int | None
    old_label: str | None
    new_label: str | None
    changes: list[Change]
    affected: list[dict] = field(default_factory=list)  # running instances: {instance, version, waiting_on, blocked_by}

    def to_dict(self) -> dict[str, Any]:
        """The diff as JSON-ready data."""
        return {"process": self.process_key, "from": {"version": self.old_version, "revision": self.old_label},
                "to": {"version": self.new_version, "revision": self.new_label},
                "changes": [c.to_dict() for c in self.changes], "running_instances": self.affected}


def _versions_to_compare(session: Session, process_key: str, old: int | None, new: int | None) -> tuple[int, int]:
    newest = store.latest_definition(session, process_key).version
    if new is None:
        new = newest
    if old is None:
        active = store.active_definition(session, process_key)
        old = active.version if active is not None and active.version != new else new - 1
    if old < 1:
        raise NotFound(f"process '{process_key}' has only version {new}: nothing to compare it with")
    return old, new


def versions(session: Session, process_key: str, old: int | None = None, new: int | None = None) -> VersionDiff:
    """What version ``new`` (default: the newest) changes from ``old`` (default: the active one, or the one before)."""
    old, new = _versions_to_compare(session, process_key, old, new)
    rows = [store.get_definition(session, process_key, v) for v in (old, new)]
    labels = [store.revision_of(session, row.id).label for row in rows]
    return VersionDiff(process_key, old, new, labels[0], labels[1],
                       compare(runtime.definition_of(rows[0]), runtime.definition_of(rows[1])))


def preview(session: Session, paths: list[Path], forms_dir: Path, settings_file: Path | None = None) -> list[VersionDiff]:
    """What deploying these files would do, changing nothing: per process with new content, its changes from
    the active version and the running instances it would affect (and what would block migrating each)."""
    found = []
    org = runtime.organisation(session)
    for definition in definitions.prepare(paths, org, forms_dir, settings_file):
        key = definition.process_key
        if store.find_definition_by_hash(session, key, definition.content_hash) is not None:
            continue
        active = store.active_definition(session, key)
        if active is None:
            found.append(VersionDiff(key, None, None, None, None, []))
            continue
        label = store.revision_of(session, active.id).label
        affected = []
        for instance in store.running_instances_of(session, key):
            _, workflow = runtime.load_workflow(instance)
            affected.append({"instance": instance.id, "business_key": instance.business_key,
                             "version": instance.definition.version,
                             "waiting_on": [name for _, name in store.active_task_names(session, instance.id)],
                             "blocked_by": migration.blocking_tasks(workflow, definition)})
        found.append(VersionDiff(key, active.version, None, label, None,
                                 compare(runtime.definition_of(active), definition), affected))
    return found
