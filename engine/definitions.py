"""Definitions: BPMN (and DMN) files read, checked and turned into runnable specs.

This is the only module that uses SpiffWorkflow's parser. :func:`prepare` reads the files a
process owner deploys, checks them against the organisation and the forms, and returns one
:class:`Definition` per executable process, carrying everything the process needs pinned with it:
the source files (its own, the processes it calls, its DMN tables), the forms its user tasks
name, and its settings. :func:`from_stored` rebuilds the same Definition from what the store
kept, so an instance always runs on exactly what was deployed.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (CycleTimerEventDefinition,
                                                              DurationTimerEventDefinition, TimerEventDefinition)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from . import yamlfile
from .calendars import CALENDAR, TIME_BASES, is_duration
from .deadlines import DUE_FROM, FROM_TASK, DueRule, check_ladder
from .directory import HEAD_ROLE, Organisation
from .errors import DefinitionError
from .forms import Form, load_form_file
from .sandbox import check_expression, data_names

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ROLES = (HEAD_ROLE,)
# What an electronic signature means (21 CFR 11.50): a task property ``signature`` names one of
# these, or ``field:NAME`` to take it from the submitted boolean or choice field NAME.
SIGNATURE_MEANINGS = ("approved", "rejected", "reviewed", "verified", "released")
FIELD_MEANING = "field:"


@dataclass(frozen=True)
class UserTaskInfo:
    """Where a user task is routed and what it collects: fixed at deploy time."""

    process: str
    bpmn_id: str
    title: str
    department: str
    role: str | None
    form: str
    signature: str | None = None       # the meaning signed, or "field:NAME"; None: no signature
    not_same_as: tuple[str, ...] = ()  # user tasks of the instance its actor must not have done
    due: str | None = None
    due_in: str = CALENDAR
    due_from: str = FROM_TASK
    due_by: str | None = None

    @property
    def key(self) -> str:
        """The task's key within a definition: ``process/bpmn_id`` (called processes share the bundle)."""
        return f"{self.process}/{self.bpmn_id}"

    @property
    def due_rule(self) -> DueRule:
        """The task's deadline properties (see :mod:`engine.deadlines`)."""
        return DueRule(due=self.due, due_in=self.due_in, due_from=self.due_from, due_by=self.due_by)


@dataclass
class Definition:
    """A process as deployed: source files, routing manifest, parsed specs and forms."""

    process_key: str
    name: str
    artifacts: dict[str, str]
    manifest: dict[str, Any]
    spec: Any
    subprocess_specs: dict[str, Any]
    forms: dict[str, Form]

    @property
    def content_hash(self) -> str:
        """SHA-256 over the pinned files and manifest: equal hashes mean identical behaviour."""
        return content_hash(self.artifacts, self.manifest)

    @property
    def settings(self) -> dict[str, Any]:
        """Process settings injected into every new instance's data (see ``processes/settings.yaml``)."""
        return self.manifest["settings"]

    @property
    def start_department(self) -> str | None:
        """The department whose members may start this process, or None when anyone may."""
        return self.manifest["start_department"]

    @property
    def escalation(self) -> list[dict]:
        """The escalation ladder of this process's overdue tasks (see :mod:`engine.deadlines`)."""
        return self.manifest.get("escalation") or []

    @property
    def start_timer(self) -> dict | None:
        """The timer start event (event, name, kind, expression) when the worker starts this process, else None."""
        return self.manifest.get("start_timer")

    def user_task(self, process: str, bpmn_id: str) -> UserTaskInfo:
        """Routing facts for a user task of this definition (or of a process it calls)."""
        raw = self.manifest["user_tasks"][f"{process}/{bpmn_id}"]
        return UserTaskInfo(**{**raw, "not_same_as": tuple(raw.get("not_same_as", ()))})

    def conflicting_tasks(self, info: UserTaskInfo) -> set[str]:
        """User tasks whose actor may not do ``info`` (separation of duties, declared on either task)."""
        declared_against = {raw["bpmn_id"] for raw in self.manifest["user_tasks"].values()
                            if info.bpmn_id in raw.get("not_same_as", ())}
        return set(info.not_same_as) | declared_against


def content_hash(artifacts: dict[str, str], manifest: dict[str, Any]) -> str:
    """SHA-256 over a version's pinned files and manifest, as stored: recomputed to detect an altered version."""
    blob = json.dumps({"artifacts": artifacts, "manifest": manifest}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _parser(validate: bool) -> SpiffBpmnParser:
    return SpiffBpmnParser(validator=VALIDATOR if validate else None)


def _add_source(parser: SpiffBpmnParser, name: str, text: str) -> None:
    """Feed one BPMN or DMN text to the parser, turning every failure into a DefinitionError with file and line."""
    try:
        xml = etree.fromstring(text.encode("utf-8"))
    except etree.XMLSyntaxError as err:
        raise DefinitionError(f"malformed XML: {err.msg}", name, err.lineno) from err
    try:
        if name.endswith(".dmn"):
            parser.add_dmn_xml(xml, name)
        else:
            parser.add_bpmn_xml(xml, name)
    except ValidationException as err:
        raise DefinitionError(str(err), err.file_name or name, err.line_number or None) from err
    except SpiffWorkflowException as err:
        raise DefinitionError(str(err), name) from err


def _build_specs(parser: SpiffBpmnParser, process_key: str, file_of: dict[str, str]) -> tuple[Any, dict, dict | None]:
    """The process's spec, its called processes' specs, and its detached timer start event (if any)."""
    try:
        spec, subprocess_specs = parser.get_spec(process_key), parser.get_subprocess_specs(process_key)
    except ValidationException as err:
        raise DefinitionError(str(err), err.file_name or file_of.get(process_key), err.line_number or None) from err
    except SpiffWorkflowException as err:
        raise DefinitionError(str(err), file_of.get(process_key)) from err
    return spec, subprocess_specs, _detach_start_timer(spec)


_TIMER_KINDS = {CycleTimerEventDefinition: "cycle", DurationTimerEventDefinition: "duration"}


def _detach_start_timer(spec) -> dict | None:
    """Take the timer off a process's timer start event and describe it; None when it has none.

    A timer start event belongs to the deployed process, not to an instance: the worker starts a
    new instance each time it falls due, and that instance begins past its start event. So the
    runnable spec gets a plain start event, and the timer lives on as the process's schedule.
    """
    for task_spec in spec.task_specs.values():
        if isinstance(task_spec, StartEvent) and isinstance(task_spec.event_definition, TimerEventDefinition):
            timer = task_spec.event_definition
            task_spec.event_definition = NoneEventDefinition()
            return {"event": task_spec.bpmn_id, "name": task_spec.bpmn_name or task_spec.bpmn_id,
                    "kind": _TIMER_KINDS.get(type(timer), "date"), "expression": timer.expression}
    return None


def _source_lines(text: str) -> dict[str, int]:
    """Line number of every element with an id, for messages about our own checks."""
    root = etree.fromstring(text.encode("utf-8"))
    return {el.get("id"): el.sourceline for el in root.iter() if isinstance(el.tag, str) and el.get("id")}


def _lanes(text: str) -> list[tuple[str, int]]:
    root = etree.fromstring(text.encode("utf-8"))
    return [(lane.get("name") or lane.get("id"), lane.sourceline) for lane in root.iter(f"{{{BPMN_NS}}}lane")]


def _artifact_name(path: Path, kind: str) -> str:
    return f"{kind}/{path.name}"


def _read_settings(path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    raw = yamlfile.parse(path.read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise DefinitionError("expected a mapping of process id to a mapping of settings", str(path))
    return raw


def prepare(paths: list[Path], org: Organisation, forms_dir: Path, settings_file: Path | None = None) -> list[Definition]:
    """Read, parse and check BPMN/DMN files for deployment; one Definition per executable process.

    Checks: well-formed XML valid against the BPMN schema; every lane names a department of the
    organisation; every user task sits in a lane, names a form that exists in ``forms_dir`` and a
    known role, and has well-formed deadline properties; every timer expression passes the
    sandbox; a timer start event is the process's only start event; the escalation ladder in the
    settings names known departments. Raises DefinitionError (file, line, what) on the first problem.
    """
    sources: dict[str, str] = {}
    for path in paths:
        kind = "dmn" if path.suffix == ".dmn" else "bpmn"
        name = _artifact_name(path, kind)
        if name in sources:
            raise DefinitionError(f"two files named '{path.name}' in one deployment", str(path))
        try:
            sources[name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DefinitionError(f"cannot read: {err}", str(path)) from err
    parser = _parser(validate=True)
    for name, text in sorted(sources.items(), key=lambda item: item[0].startswith("bpmn/")):
        _add_source(parser, name, text)
    bpmn_sources = {name: text for name, text in sources.items() if name.startswith("bpmn/")}
    for name, text in bpmn_sources.items():
        for lane, line in _lanes(text):
            if org.department_for_lane(lane) is None:
                raise DefinitionError(f"lane '{lane}' names no department of the organisation "
                                      f"(known: {', '.join(org.departments)})", name, line)
    settings = _read_settings(settings_file)
    file_of = {pid: parser.get_process_parser(pid).filename for pid in parser.get_process_ids()}
    definitions = []
    for path in paths:
        name = _artifact_name(path, "bpmn")
        own = [pid for pid, f in file_of.items() if f == name]
        for process_key in own:
            process_settings = dict(settings.get(process_key, {}))
            ladder = check_ladder(process_settings.pop("escalation", None), list(org.departments),
                                  f"{settings_file}: {process_key}")
            definitions.append(_prepare_process(parser, process_key, file_of, sources, org, forms_dir,
                                                process_settings, ladder))
    if not definitions and bpmn_sources:
        raise DefinitionError("no executable process found (isExecutable=\"true\")", next(iter(bpmn_sources)))
    return definitions


def _prepare_process(parser, process_key, file_of, sources, org, forms_dir, settings, ladder) -> Definition:
    spec, subprocess_specs, start_timer = _build_specs(parser, process_key, file_of)
    own_file = file_of[process_key]
    if start_timer is not None:
        _check_start_timer(spec, start_timer, own_file, _source_lines(sources[own_file]))
    artifacts = {own_file: sources[own_file]}
    for called in subprocess_specs:
        artifacts[file_of[called]] = sources[file_of[called]]
    artifacts.update({name: text for name, text in sources.items() if name.startswith("dmn/")})
    user_tasks: dict[str, dict] = {}
    forms: dict[str, Form] = {}
    placed: dict[str, tuple[str, int | None]] = {}
    for process_spec in (spec, *subprocess_specs.values()):
        lines = _source_lines(sources[file_of[process_spec.name]])
        for task_spec in process_spec.task_specs.values():
            _check_timer_expression(task_spec, file_of[process_spec.name], lines)
            if not isinstance(task_spec, UserTask):
                continue
            info = _user_task_info(process_spec, task_spec, org, file_of, lines)
            if info.form not in forms:
                forms[info.form] = _find_form(forms_dir, info, file_of[process_spec.name], lines)
            _check_signature(info, forms[info.form], file_of[process_spec.name], lines)
            user_tasks[info.key] = {**info.__dict__, "not_same_as": list(info.not_same_as)}
            placed[info.bpmn_id] = (file_of[process_spec.name], lines.get(info.bpmn_id))
    _check_duties(user_tasks, placed)
    _check_deadline_names(user_tasks, forms, settings, file_of, sources)
    for form in forms.values():
        artifacts[f"forms/{form.key}.yaml"] = (forms_dir / f"{form.key}.yaml").read_text(encoding="utf-8")
    start_lane = next((t.lane for t in spec.task_specs.values() if type(t).__name__ == "StartEvent" and t.lane), None)
    manifest = {
        "process_key": process_key,
        "name": spec.description or process_key,
        "user_tasks": user_tasks,
        "start_department": org.department_for_lane(start_lane) if start_lane else None,
        "settings": settings,
        "escalation": ladder,
        "start_timer": start_timer,
    }
    return Definition(process_key=process_key, name=manifest["name"], artifacts=artifacts, manifest=manifest,
                      spec=spec, subprocess_specs=subprocess_specs, forms=forms)


def _user_task_info(process_spec, task_spec, org, file_of, lines) -> UserTaskInfo:
    file_name, line = file_of[process_spec.name], lines.get(task_spec.bpmn_id)
    label = f"user task '{task_spec.bpmn_id}'"
    if not task_spec.lane:
        raise DefinitionError(f"{label} is in no lane, so no department can be given it", file_name, line)
    properties = task_spec.extensions.get("properties", {})
    form = properties.get("form")
    if not form:
        raise DefinitionError(f"{label} names no form (add the extension property 'form')", file_name, line)
    role = properties.get("role") or None
    if role is not None and role not in ROLES:
        raise DefinitionError(f"{label} asks for unknown role '{role}' (known: {', '.join(ROLES)})", file_name, line)
    not_same_as = tuple(name.strip() for name in properties.get("not_same_as", "").split(",") if name.strip())
    return UserTaskInfo(process=process_spec.name, bpmn_id=task_spec.bpmn_id,
                        title=task_spec.bpmn_name or task_spec.bpmn_id,
                        department=org.department_for_lane(task_spec.lane), role=role, form=form,
                        signature=properties.get("signature") or None, not_same_as=not_same_as,
                        **_due_properties(properties, label, file_name, line))


def _check_signature(info: UserTaskInfo, form: Form, file_name: str, lines: dict[str, int]) -> None:
    """A ``signature`` property names a known meaning, or a boolean/choice field of the task's form."""
    if info.signature is None or info.signature in SIGNATURE_MEANINGS:
        return
    field_name = info.signature.removeprefix(FIELD_MEANING)
    fields = {f.name: f for f in form.fields if f.type in ("boolean", "choice")}
    if not info.signature.startswith(FIELD_MEANING) or field_name not in fields:
        raise DefinitionError(f"user task '{info.bpmn_id}' has signature '{info.signature}': give a meaning "
                              f"({', '.join(SIGNATURE_MEANINGS)}) or field:NAME naming a boolean or choice field "
                              f"of form '{form.key}' ({', '.join(fields) or 'it has none'})",
                              file_name, lines.get(info.bpmn_id))


def _check_duties(user_tasks: dict[str, dict], placed: dict[str, tuple[str, int | None]]) -> None:
    """Every ``not_same_as`` names another user task of the same deployment."""
    for raw in user_tasks.values():
        for other in raw["not_same_as"]:
            if other not in placed or other == raw["bpmn_id"]:
                raise DefinitionError(f"user task '{raw['bpmn_id']}' has not_same_as '{other}', which is no other "
                                      f"user task of this process (known: {', '.join(sorted(placed))})",
                                      *placed[raw["bpmn_id"]])



def _due_properties(properties: dict, label: str, file_name: str, line: int | None) -> dict:
    """A user task's deadline properties, checked: ``due`` is a duration or an expression, and so on."""
    due, due_by = properties.get("due") or None, properties.get("due_by") or None
    due_in, due_from = properties.get("due_in") or CALENDAR, properties.get("due_from") or FROM_TASK
    if not due and ("due_in" in properties or "due_from" in properties):
        raise DefinitionError(f"{label} sets due_in or due_from but no 'due' duration", file_name, line)
    if due_in not in TIME_BASES:
        raise DefinitionError(f"{label}: due_in must be one of {', '.join(TIME_BASES)}, not '{due_in}'", file_name, line)
    if due_from not in DUE_FROM:
        raise DefinitionError(f"{label}: due_from must be one of {', '.join(DUE_FROM)}, not '{due_from}'",
                              file_name, line)
    for name, expression in (("due", due), ("due_by", due_by)):
        if expression and not (name == "due" and is_duration(expression)):
            problems = check_expression(expression, "eval")
            if problems:
                raise DefinitionError(f"{label} property {name}: {problems[0]}", file_name, line)
    return {"due": due, "due_in": due_in, "due_from": due_from, "due_by": due_by}


def _check_deadline_names(user_tasks: dict[str, dict], forms: dict[str, Form], settings: dict, file_of, sources) -> None:
    """Deadline expressions may read only form fields and settings: a misspelt name is refused here, at deploy.

    (At run time a field the user left empty gives no deadline, so a typo would otherwise pass silently.)
    """
    known = set(settings) | {f.name for form in forms.values() for f in form.fields}
    for raw in user_tasks.values():
        info = UserTaskInfo(**raw)
        for name, expression in (("due", info.due), ("due_by", info.due_by)):
            if not expression or (name == "due" and is_duration(expression)):
                continue
            unknown = sorted(data_names(expression) - known)
            if unknown:
                file_name = file_of[info.process]
                raise DefinitionError(f"user task '{info.bpmn_id}' property {name} {expression!r} reads "
                                      f"{', '.join(map(repr, unknown))}, which no form field or setting of the "
                                      f"process provides", file_name, _source_lines(sources[file_name]).get(info.bpmn_id))


def _check_timer_expression(task_spec, file_name: str, lines: dict[str, int]) -> None:
    timer = getattr(task_spec, "event_definition", None)
    if isinstance(timer, TimerEventDefinition):
        _check_timer_text(task_spec.bpmn_id, timer.expression or "", file_name, lines)


def _check_timer_text(event: str, expression: str, file_name: str, lines: dict[str, int]) -> None:
    """A timer's expression must pass the sandbox, and an ISO value must be quoted (PT2H alone is a variable)."""
    problems = check_expression(expression, "eval")
    if not problems:
        bare = sorted(name for name in data_names(expression) if is_duration(name))
        problems = [f"{name} is read as a variable name; write \"{name}\" with quotes" for name in bare]
    if problems:
        raise DefinitionError(f"timer '{event}': {problems[0]} (timer values are Python expressions)",
                              file_name, lines.get(event))


def _check_start_timer(spec, start_timer: dict, file_name: str, lines: dict[str, int]) -> None:
    others = [t.bpmn_id for t in spec.task_specs.values()
              if isinstance(t, StartEvent) and t.bpmn_id != start_timer["event"]]
    if others:
        raise DefinitionError(f"timer start event '{start_timer['event']}' must be the process's only start event "
                              f"(also found: {', '.join(others)})", file_name, lines.get(start_timer["event"]))
    _check_timer_text(start_timer["event"], start_timer["expression"] or "", file_name, lines)


def _find_form(forms_dir: Path, info: UserTaskInfo, file_name: str, lines: dict[str, int]) -> Form:
    path = forms_dir / f"{info.form}.yaml"
    if not path.exists():
        raise DefinitionError(f"user task '{info.bpmn_id}' names form '{info.form}', but {path} does not exist",
                              file_name, lines.get(info.bpmn_id))
    return load_form_file(path)


def from_stored(artifacts: dict[str, str], manifest: dict[str, Any]) -> Definition:
    """Rebuild a deployed Definition from its stored files and manifest (no organisation needed)."""
    parser = _parser(validate=False)
    for name, text in sorted(artifacts.items(), key=lambda item: item[0].startswith("bpmn/")):
        if not name.startswith("forms/"):
            _add_source(parser, name, text)
    file_of = {pid: parser.get_process_parser(pid).filename for pid in parser.get_process_ids()}
    process_key = manifest["process_key"]
    spec, subprocess_specs, _ = _build_specs(parser, process_key, file_of)
    forms = {name[len("forms/"):-len(".yaml")]: Form.from_yaml(text, name)
             for name, text in artifacts.items() if name.startswith("forms/")}
    return Definition(process_key=process_key, name=manifest["name"], artifacts=artifacts, manifest=manifest,
                      spec=spec, subprocess_specs=subprocess_specs, forms=forms)
