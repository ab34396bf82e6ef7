"""Forms: YAML definitions of what a user task collects, compiled to JSON Schema.

A form file (``forms/<key>.yaml``) lists fields with a type, English and Chinese labels, help,
and constraints. :meth:`Form.validate` checks submitted data with ``jsonschema`` and reports every
bad field at once, by name, in words a clerk understands. :meth:`Form.coerce` turns the strings a
command line or an HTML form sends into the field's type first.
"""

from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jsonschema

from . import yamlfile
from .errors import DefinitionError, FormError

FIELD_TYPES = ("text", "number", "integer", "date", "datetime", "choice", "multi-choice", "boolean")
_FIELD_KEYS = {"name", "type", "required", "label", "help", "max_length", "pattern", "min", "max", "choices"}
_TRUE = {"true", "yes", "y", "1", "是", "on"}
_FALSE = {"false", "no", "n", "0", "否", "off"}

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(date.fromisoformat(value)) and len(value) == 10


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value))


def _labels(raw: object, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        return {"en": raw}
    if isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values()):
        return dict(raw)
    raise ValueError(f"{where} must be text or a mapping like {{en: ..., zh: ...}}")


@dataclass(frozen=True)
class Choice:
    """One allowed value of a choice field, with its labels."""

    value: str
    label: dict[str, str]


@dataclass(frozen=True)
class Field:
    """One field of a form and its constraints."""

    name: str
    type: str
    required: bool = False
    label: dict[str, str] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    max_length: int | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Choice, ...] = ()

    def schema(self) -> dict:
        """This field's JSON Schema."""
        if self.type == "text":
            out: dict[str, Any] = {"type": "string"}
            if self.max_length is not None:
                out["maxLength"] = self.max_length
            if self.pattern:
                out["pattern"] = self.pattern
        elif self.type in ("number", "integer"):
            out = {"type": self.type}
            if self.min is not None:
                out["minimum"] = self.min
            if self.max is not None:
                out["maximum"] = self.max
        elif self.type == "date":
            out = {"type": "string", "format": "date"}
        elif self.type == "datetime":
            out = {"type": "string", "format": "date-time"}
        elif self.type == "choice":
            out = {"type": "string", "enum": [c.value for c in self.choices]}
        elif self.type == "multi-choice":
            out = {"type": "array", "uniqueItems": True, "items": {"enum": [c.value for c in self.choices]}}
        else:
            out = {"type": "boolean"}
        if self.label.get("en"):
            out["title"] = self.label["en"]
        return out

    def coerce(self, value: Any) -> Any:
        """Convert a string from a command line or HTML form to this field's type; other values pass through.

        A value that cannot be converted is returned unchanged, so validation reports it.
        """
        if not isinstance(value, str):
            return value
        text = value.strip()
        try:
            if self.type == "integer":
                return int(text)
            if self.type == "number":
                return float(text)
        except ValueError:
            return value
        if self.type == "boolean":
            low = text.casefold()
            return True if low in _TRUE else False if low in _FALSE else value
        if self.type == "multi-choice":
            return [part.strip() for part in text.split(",") if part.strip()]
        return text

    def problem(self, validator: str, detail: Any) -> str:
        """Words for a failed JSON Schema keyword on this field."""
        if validator == "required":
            return "is required"
        if validator == "type":
            kind = {"string": "text", "integer": "a whole number", "number": "a number",
                    "boolean": "yes or no (true/false)", "array": "a list"}
            return f"must be {kind.get(detail, detail)}"
        if validator == "enum":
            return "must be one of: " + ", ".join(c.value for c in self.choices)
        if validator == "minimum":
            return f"must be at least {detail:g}"
        if validator == "maximum":
            return f"must be at most {detail:g}"
        if validator == "maxLength":
            return f"must be at most {detail} characters"
        if validator == "pattern":
            return f"does not match the pattern {detail}"
        if validator == "format":
            return "must be a date (YYYY-MM-DD)" if self.type == "date" else "must be a date and time (ISO 8601)"
        if validator == "uniqueItems":
            return "lists a choice twice"
        return f"fails the '{validator}' rule"


@dataclass(frozen=True)
class Form:
    """A named form: its titles and fields, in order."""

    key: str
    title: dict[str, str]
    fields: tuple[Field, ...]
    description: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, text: str, file_name: str) -> "Form":
        """Parse and check a form file; raises DefinitionError naming the file (and line, for YAML syntax)."""
        raw = yamlfile.parse(text, file_name)
        try:
            return cls._from_dict(raw)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise DefinitionError(f"invalid form: {err}", file_name) from err

    @classmethod
    def _from_dict(cls, raw: Any) -> "Form":
        if not isinstance(raw, dict):
            raise ValueError("expected a mapping with 'key', 'title' and 'fields'")
        unknown = set(raw) - {"key", "title", "description", "fields"}
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
        fields = tuple(cls._field(f, i) for i, f in enumerate(raw.get("fields") or []))
        names = [f.name for f in fields]
        twice = {n for n in names if names.count(n) > 1}
        if twice:
            raise ValueError(f"field names used twice: {', '.join(sorted(twice))}")
        form = cls(key=str(raw["key"]), title=_labels(raw.get("title"), "title"), fields=fields,
                   description=_labels(raw.get("description"), "description"))
        jsonschema.Draft202012Validator.check_schema(form.json_schema())
        return form

    @staticmethod
    def _field(raw: Any, index: int) -> Field:
        if not isinstance(raw, dict) or "name" not in raw:
            raise ValueError(f"field #{index + 1} needs a 'name'")
        name = raw["name"]
        where = f"field '{name}'"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{where}: the name must be a Python identifier (letters, digits, _)")
        unknown = set(raw) - _FIELD_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")
        kind = raw.get("type", "text")
        if kind not in FIELD_TYPES:
            raise ValueError(f"{where}: type '{kind}' is not one of {', '.join(FIELD_TYPES)}")
        choices = tuple(Choice(value=str(c["value"]), label=_labels(c.get("label"), f"{where} choice"))
                        for c in raw.get("choices") or [])
        if kind in ("choice", "multi-choice") and not choices:
            raise ValueError(f"{where}: a {kind} field needs choices")
        return Field(name=name, type=kind, required=bool(raw.get("required", False)),
                     label=_labels(raw.get("label"), f"{where} label"), help=_labels(raw.get("help"), f"{where} help"),
                     max_length=raw.get("max_length"), pattern=raw.get("pattern"),
                     min=raw.get("min"), max=raw.get("max"), choices=choices)

    def json_schema(self) -> dict:
        """The JSON Schema (draft 2020-12) every submission of this form must satisfy."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.title.get("en", self.key),
            "type": "object",
            "properties": {f.name: f.schema() for f in self.fields},
            "required": [f.name for f in self.fields if f.required],
            "additionalProperties": False,
        }

    @cached_property
    def _validator(self) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(self.json_schema(), format_checker=_FORMATS)

    def coerce(self, data: dict[str, Any]) -> dict[str, Any]:
        """Convert string values to each field's type; a blank string counts as not given. Unknown keys are kept."""
        by_name = {f.name: f for f in self.fields}
        out = {}
        for key, value in data.items():
            spec = by_name.get(key)
            if isinstance(value, str) and not value.strip():
                continue
            out[key] = spec.coerce(value) if spec else value
        return out

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        """Return the coerced data if it satisfies the form; otherwise raise FormError naming every bad field."""
        clean = self.coerce(data)
        by_name = {f.name: f for f in self.fields}
        problems: dict[str, str] = {}
        for error in self._validator.iter_errors(clean):
            if error.validator == "required":
                for name in error.validator_value:
                    if name not in clean:
                        problems.setdefault(name, "is required")
            elif error.validator == "additionalProperties":
                for name in sorted(set(clean) - set(by_name)):
                    problems.setdefault(name, f"is not a field of form '{self.key}'")
            elif error.absolute_path:
                name = str(error.absolute_path[0])
                problems.setdefault(name, by_name[name].problem(str(error.validator), error.validator_value))
            else:
                problems.setdefault("(form)", error.message)
        if problems:
            ordered = {f.name: problems.pop(f.name) for f in self.fields if f.name in problems}
            raise FormError(self.key, {**ordered, **problems})
        return clean


def load_form_file(path: Path) -> Form:
    """Read one form file; its ``key`` must equal the file's stem."""
    form = Form.from_yaml(path.read_text(encoding="utf-8"), str(path))
    if form.key != path.stem:
        raise DefinitionError(f"form key '{form.key}' differs from the file name '{path.stem}'", str(path))
    return form
