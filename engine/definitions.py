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

import yaml
from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from .directory import HEAD_ROLE, Organisation
from .errors import DefinitionError
from .forms import Form, load_form_file

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

    @property
    def key(self) -> str:
        """The task's key within a definition: ``process/bpmn_id`` (called processes share the bundle)."""
        return f"{self.process}/{self.bpmn_id}"


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


def _build_specs(parser: SpiffBpmnParser, process_key: str, file_of: dict[str, str]) -> tuple[Any, dict]:
    try:
        return parser.get_spec(process_key), parser.get_subprocess_specs(process_key)
    except ValidationException as err:
        raise DefinitionError(str(err), err.file_name or file_of.get(process_key), err.line_number or None) from err
    except SpiffWorkflowException as err:
        raise DefinitionError(str(err), file_of.get(process_key)) from err


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
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DefinitionError(f"invalid YAML: {err}", str(path), mark.line + 1 if mark else None) from err
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise DefinitionError("expected a mapping of process id to a mapping of settings", str(path))
    return raw


def prepare(paths: list[Path], org: Organisation, forms_dir: Path, settings_file: Path | None = None) -> list[Definition]:
    """Read, parse and check BPMN/DMN files for deployment; one Definition per executable process.

    Checks: well-formed XML valid against the BPMN schema; every lane names a department of the
    organisation; every user task sits in a lane, names a form that exists in ``forms_dir`` and a
    known role. Raises DefinitionError (file, line, what) on the first problem.
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
            definitions.append(_prepare_process(parser, process_key, file_of, sources, org, forms_dir,
                                                settings.get(process_key, {})))
    if not definitions and bpmn_sources:
        raise DefinitionError("no executable process found (isExecutable=\"true\")", next(iter(bpmn_sources)))
    return definitions


def _prepare_process(parser, process_key, file_of, sources, org, forms_dir, settings) -> Definition:
    spec, subprocess_specs = _build_specs(parser, process_key, file_of)
    own_file = file_of[process_key]
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
            if not isinstance(task_spec, UserTask):
                continue
            info = _user_task_info(process_spec, task_spec, org, file_of, lines)
            if info.form not in forms:
                forms[info.form] = _find_form(forms_dir, info, file_of[process_spec.name], lines)
            _check_signature(info, forms[info.form], file_of[process_spec.name], lines)
            user_tasks[info.key] = {**info.__dict__, "not_same_as": list(info.not_same_as)}
            placed[info.bpmn_id] = (file_of[process_spec.name], lines.get(info.bpmn_id))
    _check_duties(user_tasks, placed)
    for form in forms.values():
        artifacts[f"forms/{form.key}.yaml"] = (forms_dir / f"{form.key}.yaml").read_text(encoding="utf-8")
    start_lane = next((t.lane for t in spec.task_specs.values() if type(t).__name__ == "StartEvent" and t.lane), None)
    manifest = {
        "process_key": process_key,
        "name": spec.description or process_key,
        "user_tasks": user_tasks,
        "start_department": org.department_for_lane(start_lane) if start_lane else None,
        "settings": settings,
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
                        signature=properties.get("signature") or None, not_same_as=not_same_as)


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
    spec, subprocess_specs = _build_specs(parser, process_key, file_of)
    forms = {name[len("forms/"):-len(".yaml")]: Form.from_yaml(text, name)
             for name, text in artifacts.items() if name.startswith("forms/")}
    return Definition(process_key=process_key, name=manifest["name"], artifacts=artifacts, manifest=manifest,
                      spec=spec, subprocess_specs=subprocess_specs, forms=forms)
