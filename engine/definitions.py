"""Definitions: BPMN (and DMN) files read, checked and turned into runnable specs.

This is the only module that uses SpiffWorkflow's parser. :func:`prepare` reads the files a
process owner deploys, checks them against the organisation and the forms, and returns one
:class:`Definition` per executable process, carrying everything the process needs pinned with it:
the source files (its own, the processes it calls, its DMN tables), the forms its user tasks
name, and its settings. :func:`from_stored` rebuilds the same Definition from what the store
kept, so an instance always runs on exactly what was deployed.
"""

import functools
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
from .decisions import StrictDecision
from .directory import HEAD_ROLE, Organisation
from .errors import DefinitionError
from .forms import Form, load_form_file
from .lint import ERROR, WARNING, Problem
from .lint import bpmn as lint_bpmn
from .lint import diagram as lint_diagram
from .lint import dmn as lint_dmn
from .lint import expressions as lint_expressions
from .lint import flow as lint_flow
from .lint import references as lint_references
from .sandbox import check_expression, data_names

BPMN_NS = lint_bpmn.BPMN
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


class _Parser(SpiffBpmnParser):
    """Spiff's parser whose business rule tasks refuse inputs their table has no rule for (see engine.decisions)."""

    def get_engine(self, decision_ref, node):
        super().get_engine(decision_ref, node)  # parses the table, or says which decisions exist
        found = self.dmn_parsers[decision_ref]
        return StrictDecision(found.decision, found.filename)


def _parser(validate: bool) -> SpiffBpmnParser:
    return _Parser(validator=VALIDATOR if validate else None)


def _add_source(parser: SpiffBpmnParser, name: str, text: str) -> None:
    """Feed one stored BPMN or DMN text to the parser, turning every failure into a DefinitionError with file and line."""
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


def _build_specs(parser: SpiffBpmnParser, process_key: str, file_of: dict[str, str],
                 line_of=lambda file_name, element_id: None) -> tuple[Any, dict, dict | None]:
    """The process's spec, its called processes' specs, and its detached timer start event (if any).

    ``line_of(file, id)`` finds the line of the element a Spiff error names (Spiff's own errors carry none).
    """
    try:
        spec, subprocess_specs = parser.get_spec(process_key), parser.get_subprocess_specs(process_key)
    except ValidationException as err:
        file_name = err.file_name or file_of.get(process_key)
        raise DefinitionError(_spiff_message(err), file_name,
                              err.line_number or line_of(file_name, getattr(err, "id", None))) from err
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


def _artifact_name(path: Path) -> str:
    return f"{'dmn' if path.suffix == '.dmn' else 'bpmn'}/{path.name}"


@dataclass
class Source:
    """One file being checked: its name as the user gave it, its stored name, its text and parsed XML."""

    path: str
    artifact: str
    text: str
    root: Any = None        # None when the file could not be read or parsed

    @property
    def is_dmn(self) -> bool:
        """Whether the file is a DMN decision (else BPMN)."""
        return self.artifact.startswith("dmn/")

    @functools.cached_property
    def lines(self) -> dict[str, int]:
        """The line of every element with an id."""
        return {el.get("id"): el.sourceline for el in self.root.iter() if isinstance(el.tag, str) and el.get("id")}


@dataclass
class Checked:
    """The outcome of checking a set of files: every problem found, and the definitions of the error-free processes."""

    files: list[str]
    problems: list[Problem]
    definitions: list[Definition]

    @property
    def errors(self) -> list[Problem]:
        """The problems that stop a deploy (warnings do not)."""
        return [p for p in self.problems if p.severity == ERROR]


class _Problems(list):
    """The problems found so far, with the files' displayed names (stored names are mapped back)."""

    def __init__(self, display: dict[str, str]):
        super().__init__()
        self.display = display

    def add(self, file_name: str | None, line: int | None, message: str, severity: str = ERROR,
            unless_reported: bool = False) -> None:
        """Record one problem; ``file_name`` may be a stored name (``bpmn/x.bpmn``) or a path.

        ``unless_reported``: skip it when an error is already recorded at that line (Spiff's errors
        often repeat what a lint check said more precisely).
        """
        file_name = self.display.get(file_name or "?", file_name or "?")
        if unless_reported and line and any((p.file, p.line, p.severity) == (file_name, line, ERROR) for p in self):
            return
        self.append(Problem(file_name, line or 0, message, severity))

    def add_error(self, err: DefinitionError, unless_reported: bool = False) -> None:
        """Record a DefinitionError raised by a helper (forms, settings, escalation ladders, Spiff)."""
        message = str(err)
        where = f"{err.file_name}:{err.line}: " if err.file_name and err.line else f"{err.file_name}: "
        self.add(err.file_name, err.line, message.removeprefix(where) if err.file_name else message,
                 unless_reported=unless_reported)


def check(paths: list[Path], org: Organisation, forms_dir: Path, settings_file: Path | None = None) -> Checked:
    """Run every check on BPMN/DMN files and collect what is wrong; nothing in the files makes this raise.

    The files are checked together (call activities and business rule tasks resolve among them).
    Checks: readable, well-formed XML valid against the BPMN schema, parsed by SpiffWorkflow; the
    :mod:`engine.lint` checks (diagram, flows and gateways, expressions and timers, references, DMN
    tables); every lane names a department of the organisation; every user task sits in a lane,
    names a form that exists in ``forms_dir`` and a known role, with well-formed signature,
    separation-of-duty and deadline properties; a timer start event is its process's only start
    event; the settings and escalation ladder are well-formed. ``definitions`` holds one Definition
    per executable process when there is no error at all.
    """
    sources, problems = _read_sources(paths)
    bpmn = [s for s in sources if s.root is not None and not s.is_dmn]
    process_ids = {el.get("id") for s in bpmn for el in s.root if lint_bpmn.is_bpmn(el, "process") and el.get("id")}
    decision_ids = {el.get("id") for s in sources if s.root is not None and s.is_dmn for el in s.root
                    if lint_bpmn.local_name(el) == "decision" and el.get("id")}
    first_definer: dict[str, str] = {}
    for source in bpmn:
        for process in (el for el in source.root if lint_bpmn.is_bpmn(el, "process") and not el.get("id")):
            problems.add(source.path, process.sourceline, "a process has no id")
        for process in (el for el in source.root if lint_bpmn.is_bpmn(el, "process") and el.get("id")):
            defined_in = first_definer.setdefault(process.get("id"), source.path)
            if defined_in != source.path:
                problems.add(source.path, process.sourceline, f"process '{process.get('id')}' is also defined in "
                             f"{defined_in}: process ids must be unique among the files checked together")
    for source in sources:
        if source.root is not None:
            problems += _lint(source, process_ids, decision_ids)
    for source in bpmn:
        for lane in (el for el in source.root.iter() if lint_bpmn.is_bpmn(el, "lane")):
            name = lane.get("name") or lane.get("id") or ""
            if org.department_for_lane(name) is None:
                problems.add(source.path, lane.sourceline, f"lane '{name}' names no department of the organisation "
                             f"(known: {', '.join(org.departments)})")
    settings = _read_settings(settings_file, problems)
    definitions = _prepare_processes(sources, org, forms_dir, settings, settings_file, problems)
    unique = sorted(set(problems))
    return Checked(files=[s.path for s in sources], problems=unique,
                   definitions=definitions if not any(p.severity == ERROR for p in unique) else [])


def prepare(paths: list[Path], org: Organisation, forms_dir: Path, settings_file: Path | None = None) -> list[Definition]:
    """Check BPMN/DMN files for deployment (see :func:`check`); one Definition per executable process.

    Raises DefinitionError when any check finds an error: it names the first problem's file and
    line, and its message lists every error found, one ``file:line: message`` per line.
    """
    checked = check(paths, org, forms_dir, settings_file)
    if checked.errors:
        first, *rest = checked.errors
        more = "".join(f"\n{p}" for p in rest)
        raise DefinitionError(first.message + more, first.file, first.line or None)
    return checked.definitions


def _read_sources(paths: list[Path]) -> tuple[list[Source], _Problems]:
    """Read and parse every file; a file that cannot be read, parsed or schema-validated gets its problems."""
    sources: list[Source] = []
    problems = _Problems({_artifact_name(p): str(p) for p in paths})
    for path in paths:
        artifact = _artifact_name(path)
        if any(s.artifact == artifact for s in sources):
            problems.add(str(path), 0, f"two files named '{path.name}' in one set: stored names must be unique")
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problems.add(str(path), 0, f"cannot read: {err}")
            continue
        source = Source(str(path), artifact, text)
        sources.append(source)
        try:
            source.root = etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError as err:
            problems.add(source.path, err.lineno, f"malformed XML: {err.msg}")
            continue
        problems += _foreign_root(source)
        if source.root is not None and not source.is_dmn:
            VALIDATOR.preprocess(source.root)
            if not VALIDATOR.validator.validate(source.root):
                for entry in VALIDATOR.validator.error_log:
                    problems.add(source.path, entry.line, f"not valid BPMN 2.0: {entry.message}")
    return sources, problems


def _foreign_root(source: Source) -> list[Problem]:
    """A problem (and the root dropped) when a file is not a BPMN or DMN ``definitions`` document."""
    root = source.root
    namespace = etree.QName(root).namespace or ""
    expected = "BPMN 2.0 (" + BPMN_NS + ")" if not source.is_dmn else "DMN"
    if etree.QName(root).localname == "definitions" and (namespace == BPMN_NS or (source.is_dmn and "DMN" in namespace)):
        return []
    source.root = None
    return [Problem(source.path, root.sourceline or 0,
                    f"not a {expected} file: its root element is {{{namespace}}}{etree.QName(root).localname}")]


def _lint(source: Source, process_ids: set[str], decision_ids: set[str]) -> list[Problem]:
    """The XML checks of :mod:`engine.lint` for one file; a check that fails on odd input says so, never raises."""
    if source.is_dmn:
        checks = [("decision tables", lambda: lint_dmn.check(source.path, source.root))]
    else:
        checks = [("diagram", lambda: lint_diagram.check(source.path, source.root)),
                  ("flows", lambda: lint_flow.check(source.path, source.root)),
                  ("expressions", lambda: lint_expressions.check(source.path, source.root)),
                  ("references", lambda: lint_references.check(source.path, source.root, process_ids, decision_ids))]
    problems = []
    for name, run in checks:
        try:
            problems += run()
        except Exception as err:  # noqa: BLE001 - a file from any modeler must get a message, not a traceback
            problems.append(Problem(source.path, 0, f"the {name} check could not finish on this file "
                                    f"({type(err).__name__}: {err}); please report it with the file", WARNING))
    return problems


def _read_settings(path: Path | None, problems: _Problems) -> dict[str, Any]:
    if path is None or not path.exists():
        return {}
    try:
        raw = yamlfile.parse(path.read_text(encoding="utf-8"), str(path)) or {}
    except (DefinitionError, OSError, UnicodeDecodeError) as err:
        problems.add_error(err if isinstance(err, DefinitionError) else DefinitionError(f"cannot read: {err}", str(path)))
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        problems.add(str(path), 0, "expected a mapping of process id to a mapping of settings")
        return {}
    return raw


def _spiff_parser(sources: list[Source], problems: _Problems) -> SpiffBpmnParser:
    """A Spiff parser fed every parsed file (DMN first); what Spiff refuses becomes a problem."""
    parser = _parser(validate=False)
    for source in sorted((s for s in sources if s.root is not None), key=lambda s: not s.is_dmn):
        try:
            if source.is_dmn:
                parser.add_dmn_xml(source.root, source.artifact)
            else:
                parser.add_bpmn_xml(source.root, source.artifact)
        except ValidationException as err:
            problems.add(err.file_name or source.artifact, err.line_number or source.lines.get(err.id),
                         _spiff_message(err), unless_reported=True)
        except Exception as err:  # noqa: BLE001 - SpiffWorkflow fails in many ways on files from other modelers
            problems.add(source.artifact, 0, f"SpiffWorkflow cannot read this file: {type(err).__name__}: {err}")
    return parser


def _spiff_message(err: Exception) -> str:
    """Spiff's message, naming the element it is about when it gives one."""
    message = str(err).splitlines()[0].strip() if str(err) else type(err).__name__
    element_id, tag = getattr(err, "id", ""), getattr(err, "tag", "")
    return f"{tag.removeprefix('bpmn:')} '{element_id}': {message}" if element_id and tag else message


def _prepare_processes(sources, org, forms_dir, settings, settings_file, problems: _Problems) -> list[Definition]:
    """Build and check every executable process's spec; the Definitions of those that built."""
    parser = _spiff_parser(sources, problems)
    try:
        file_of = {pid: parser.get_process_parser(pid).filename for pid in parser.get_process_ids()}
    except Exception as err:  # noqa: BLE001
        problems.add(sources[0].path if sources else "?", 0, f"SpiffWorkflow cannot list the processes: {err}")
        return []
    by_artifact = {s.artifact: s for s in sources}
    definitions = []
    for source in sources:
        own = [pid for pid, f in file_of.items() if f == source.artifact]
        for process_key in own:
            process_settings = dict(settings.get(process_key, {}))
            try:
                ladder = check_ladder(process_settings.pop("escalation", None), list(org.departments),
                                      f"{settings_file}: {process_key}")
            except DefinitionError as err:
                problems.add_error(err)
                ladder = []
            try:
                definition = _prepare_process(parser, process_key, file_of, by_artifact, org, forms_dir,
                                              process_settings, ladder, problems, settings)
            except Exception as err:  # noqa: BLE001 - a file from any modeler must get a message, not a traceback
                problems.add(source.path, 0, f"could not finish checking process '{process_key}' "
                             f"({type(err).__name__}: {err}); please report it with the file")
                definition = None
            if definition is not None:
                definitions.append(definition)
    bpmn = [s for s in sources if not s.is_dmn and s.root is not None]
    if bpmn and not file_of:
        problems.add(bpmn[0].path, 0, "no executable process found (isExecutable=\"true\")")
    elif file_of:
        for source in bpmn:
            if source.artifact not in file_of.values():
                problems.add(source.path, 0, "has no executable process (isExecutable=\"true\"): deploy leaves "
                             "it out", WARNING)
    return definitions


def _decision_tables(bpmn_artifacts: dict[str, str], by_artifact: dict) -> dict[str, str]:
    """The DMN files whose decisions the given BPMN files' business rule tasks call: only those are pinned with
    the process, so deploying it beside an unrelated table does not make a new version of it."""
    tag = f"{{{lint_bpmn.SPIFF}}}calledDecisionId"
    called = {el.text.strip() for name in bpmn_artifacts for el in by_artifact[name].root.iter(tag)
              if el.text and el.text.strip()}
    return {name: source.text for name, source in by_artifact.items()
            if source.is_dmn and source.root is not None
            and any(lint_bpmn.local_name(el) == "decision" and el.get("id") in called for el in source.root)}


def _prepare_process(parser, process_key, file_of, by_artifact, org, forms_dir, settings, ladder,
                     problems: _Problems, all_settings: dict[str, dict]) -> Definition | None:
    own_file = file_of[process_key]
    try:
        spec, subprocess_specs, start_timer = _build_specs(
            parser, process_key, file_of, lambda file_name, element_id: by_artifact[file_name].lines.get(element_id)
            if file_name in by_artifact else None)
    except Exception as err:  # noqa: BLE001 - a foreign file may trip Spiff in ways it does not wrap
        if isinstance(err, DefinitionError):
            problems.add_error(err, unless_reported=True)
        else:
            problems.add(own_file, 0, f"SpiffWorkflow cannot build process '{process_key}': {type(err).__name__}: {err}")
        # Spiff gave up on the process, but its user tasks can still be checked from the XML.
        _check_user_tasks(_xml_user_tasks(by_artifact[own_file], process_key), org, forms_dir, settings, problems)
        return None
    settings = {**_called_settings(all_settings, subprocess_specs), **settings}
    found_before = len(problems)
    if start_timer is not None:
        _check_start_timer(spec, start_timer, own_file, by_artifact[own_file].lines, problems)
    artifacts = {own_file: by_artifact[own_file].text}
    for called in subprocess_specs:
        artifacts[file_of[called]] = by_artifact[file_of[called]].text
    artifacts.update(_decision_tables(artifacts, by_artifact))
    facts = [_TaskFacts(process_spec.name, task_spec.bpmn_id, task_spec.bpmn_name or task_spec.bpmn_id,
                        task_spec.lane, task_spec.extensions.get("properties", {}), file_of[process_spec.name],
                        by_artifact[file_of[process_spec.name]].lines.get(task_spec.bpmn_id))
             for process_spec in (spec, *subprocess_specs.values()) if file_of.get(process_spec.name) in by_artifact
             for task_spec in process_spec.task_specs.values() if isinstance(task_spec, UserTask)]
    user_tasks, forms = _check_user_tasks(facts, org, forms_dir, settings, problems)
    if len(problems) > found_before or None in forms.values():
        return None
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


def _called_settings(settings: dict[str, dict], called) -> dict[str, Any]:
    """The settings of the processes a process calls (their escalation ladders aside): the called
    process's tasks and deadlines read them from the data the caller passes in."""
    merged: dict[str, Any] = {}
    for process_key in called:
        merged.update({k: v for k, v in settings.get(process_key, {}).items() if k != "escalation"})
    return merged


@dataclass(frozen=True)
class _TaskFacts:
    """What the checks read about a user task: from Spiff's spec, or from the XML when Spiff could not build it."""

    process: str
    bpmn_id: str
    title: str
    lane: str | None
    properties: dict
    file_name: str
    line: int | None


def _xml_user_tasks(source: Source, process_key: str) -> list[_TaskFacts]:
    """The user tasks of one process read from the XML as Spiff would: innermost lane, sub-processes take theirs."""
    process = next((el for el in source.root if lint_bpmn.is_bpmn(el, "process") and el.get("id") == process_key), None)
    if process is None:
        return []
    lane_of = {}
    for lane in (el for el in process.iter() if lint_bpmn.is_bpmn(el, "lane")):  # outer lanes first, inner override
        for ref in (el for el in lane if lint_bpmn.is_bpmn(el, "flowNodeRef")):
            lane_of[lint_bpmn.text(ref)] = lane.get("name") or lane.get("id")
    facts = []
    for task in (el for el in process.iter() if lint_bpmn.is_bpmn(el, "userTask")):
        holder = next((el for el in task.iterancestors() if el.get("id") in lane_of), None)
        lane = lane_of.get(task.get("id")) or (lane_of[holder.get("id")] if holder is not None else None)
        extensions = lint_bpmn.child(task, "extensionElements")
        properties = {p.get("name"): p.get("value") for p in
                      (extensions.iter(f"{{{lint_bpmn.SPIFF}}}property") if extensions is not None else ())}
        facts.append(_TaskFacts(process_key, task.get("id") or "?", task.get("name") or task.get("id") or "?", lane,
                                properties, source.artifact, task.sourceline))
    return facts


def _check_user_tasks(facts: list[_TaskFacts], org, forms_dir, settings, problems: _Problems
                      ) -> tuple[dict[str, dict], dict[str, Form | None]]:
    """Check each user task (lane, form, role, signature, duties, deadlines); their manifest entries and forms."""
    user_tasks: dict[str, dict] = {}
    forms: dict[str, Form | None] = {}
    placed: dict[str, tuple[str, int | None]] = {}
    for task in facts:
        form_key = task.properties.get("form")
        if form_key and form_key not in forms:
            forms[form_key] = _find_form(forms_dir, task.bpmn_id, form_key, task.file_name, task.line, problems)
        info = _user_task_info(task, org, problems)
        if info is None:
            continue
        if forms[info.form] is not None:
            _check_signature(info, forms[info.form], task.file_name, task.line, problems)
        user_tasks[info.key] = {**info.__dict__, "not_same_as": list(info.not_same_as)}
        placed[info.bpmn_id] = (task.file_name, task.line)
    _check_duties(user_tasks, placed, problems)
    if None not in forms.values():  # a missing form's fields are unknown: its names would all look misspelt
        _check_deadline_names(user_tasks, forms, settings, placed, problems)
    return user_tasks, forms


def _user_task_info(task: _TaskFacts, org, problems: _Problems) -> UserTaskInfo | None:
    """The task's routing facts, or None after recording what is wrong with them."""
    label, file_name, line = f"user task '{task.bpmn_id}'", task.file_name, task.line
    found_before = len(problems)
    if not task.lane:
        problems.add(file_name, line, f"{label} is in no lane, so no department can be given it")
    properties = task.properties
    form = properties.get("form")
    if not form:
        problems.add(file_name, line, f"{label} names no form (add the extension property 'form')")
    role = properties.get("role") or None
    if role is not None and role not in ROLES:
        problems.add(file_name, line, f"{label} asks for unknown role '{role}' (known: {', '.join(ROLES)})")
    not_same_as = tuple(name.strip() for name in (properties.get("not_same_as") or "").split(",") if name.strip())
    due = _due_properties(properties, label, file_name, line, problems)
    if len(problems) > found_before:
        return None
    return UserTaskInfo(process=task.process, bpmn_id=task.bpmn_id, title=task.title,
                        department=org.department_for_lane(task.lane), role=role, form=form,
                        signature=properties.get("signature") or None, not_same_as=not_same_as, **due)


def _check_signature(info: UserTaskInfo, form: Form, file_name: str, line: int | None, problems: _Problems) -> None:
    """A ``signature`` property names a known meaning, or a boolean/choice field of the task's form."""
    if info.signature is None or info.signature in SIGNATURE_MEANINGS:
        return
    field_name = info.signature.removeprefix(FIELD_MEANING)
    fields = {f.name: f for f in form.fields if f.type in ("boolean", "choice")}
    if not info.signature.startswith(FIELD_MEANING) or field_name not in fields:
        problems.add(file_name, line,
                     f"user task '{info.bpmn_id}' has signature '{info.signature}': give a meaning "
                     f"({', '.join(SIGNATURE_MEANINGS)}) or field:NAME naming a boolean or choice field "
                     f"of form '{form.key}' ({', '.join(fields) or 'it has none'})")


def _check_duties(user_tasks: dict[str, dict], placed: dict[str, tuple[str, int | None]], problems: _Problems) -> None:
    """Every ``not_same_as`` names another user task of the same deployment."""
    for raw in user_tasks.values():
        for other in raw["not_same_as"]:
            if other not in placed or other == raw["bpmn_id"]:
                problems.add(*placed[raw["bpmn_id"]],
                             f"user task '{raw['bpmn_id']}' has not_same_as '{other}', which is no other "
                             f"user task of this process (known: {', '.join(sorted(placed))})")


def _due_properties(properties: dict, label: str, file_name: str, line: int | None, problems: _Problems) -> dict:
    """A user task's deadline properties, checked: ``due`` is a duration or an expression, and so on."""
    due, due_by = properties.get("due") or None, properties.get("due_by") or None
    due_in, due_from = properties.get("due_in") or CALENDAR, properties.get("due_from") or FROM_TASK
    if not due and ("due_in" in properties or "due_from" in properties):
        problems.add(file_name, line, f"{label} sets due_in or due_from but no 'due' duration")
    if due_in not in TIME_BASES:
        problems.add(file_name, line, f"{label}: due_in must be one of {', '.join(TIME_BASES)}, not '{due_in}'")
    if due_from not in DUE_FROM:
        problems.add(file_name, line, f"{label}: due_from must be one of {', '.join(DUE_FROM)}, not '{due_from}'")
    fix = lint_expressions.fixed_value(due.strip("\"'"), "duration") if due else None
    if fix:
        problems.add(file_name, line, f"{label} property due '{due}' is not an ISO 8601 duration: write {fix}")
    for name, expression in (("due", None if fix else due), ("due_by", due_by)):
        if expression and not (name == "due" and is_duration(expression)):
            for message in check_expression(expression, "eval"):
                problems.add(file_name, line, f"{label} property {name}: {message}")
    return {"due": due, "due_in": due_in, "due_from": due_from, "due_by": due_by}


def _check_deadline_names(user_tasks: dict[str, dict], forms: dict[str, Form], settings: dict,
                          placed: dict[str, tuple[str, int | None]], problems: _Problems) -> None:
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
                problems.add(*placed[info.bpmn_id],
                             f"user task '{info.bpmn_id}' property {name} {expression!r} reads "
                             f"{', '.join(map(repr, unknown))}, which no form field or setting of the process provides")


def _check_start_timer(spec, start_timer: dict, file_name: str, lines: dict[str, int], problems: _Problems) -> None:
    others = [t.bpmn_id for t in spec.task_specs.values()
              if isinstance(t, StartEvent) and t.bpmn_id != start_timer["event"]]
    if others:
        problems.add(file_name, lines.get(start_timer["event"]),
                     f"timer start event '{start_timer['event']}' must be the process's only start event "
                     f"(also found: {', '.join(others)})")


def _find_form(forms_dir: Path, bpmn_id: str, form_key: str, file_name: str, line: int | None,
               problems: _Problems) -> Form | None:
    path = forms_dir / f"{form_key}.yaml"
    if not path.exists():
        problems.add(file_name, line, f"user task '{bpmn_id}' names form '{form_key}', but {path} does not exist")
        return None
    try:
        return load_form_file(path)
    except DefinitionError as err:
        problems.add_error(err)
        return None


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
