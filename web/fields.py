"""A task's form as HTML widgets, and an HTML form submission as the data the engine validates.

The form itself (fields, types, choices, labels in two languages) comes from the engine; this
module only decides how each field type is shown and reads the browser's answer back: every
value arrives as text (a list for multi-choice) and the engine's form coerces and validates it.
"""

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from .i18n import pick

SIGNATURE_FIELD = "signature_password"
"""The posted field that carries the signer's password on a task that needs an electronic signature."""
_LONG_TEXT = 200
_RADIO_MAX = 4


@dataclass(frozen=True)
class Widget:
    """One field as the template draws it."""

    name: str
    kind: str  # text, textarea, number, date, datetime, select, radio, checkboxes
    label: str
    help: str
    required: bool
    choices: tuple[tuple[str, str], ...]
    value: Any  # text, or a list of values for checkboxes
    error: str | None
    step: str = "1"


def _kind(field) -> str:
    if field.type == "text":
        return "textarea" if field.max_length is None or field.max_length > _LONG_TEXT else "text"
    if field.type in ("number", "integer"):
        return "number"
    if field.type in ("date", "datetime"):
        return field.type
    if field.type == "multi-choice":
        return "checkboxes"
    if field.type == "boolean":
        return "radio"
    return "radio" if len(field.choices) <= _RADIO_MAX else "select"


def _as_text(field, value: Any) -> Any:
    """A stored value as the widget shows it: booleans as yes/no, lists as lists, the rest as text."""
    if field.type == "multi-choice":
        return [str(v) for v in value] if isinstance(value, list) else [v for v in str(value).split(",") if v]
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def widgets(form, lang: str, words: dict[str, str], values: dict[str, Any],
            problems: dict[str, str] | None = None) -> list[Widget]:
    """The form's fields as widgets in the language, filled with ``values`` and showing ``problems``."""
    problems = problems or {}
    out = []
    for field in form.fields:
        if field.type == "boolean":
            choices = (("yes", words["yes"]), ("no", words["no"]))
        else:
            choices = tuple((c.value, pick(c.label, lang, c.value)) for c in field.choices)
        out.append(Widget(
            name=field.name, kind=_kind(field), label=pick(field.label, lang, field.name),
            help=pick(field.help, lang), required=field.required, choices=choices,
            value=_as_text(field, values.get(field.name)) if field.name in values else
            ([] if field.type == "multi-choice" else ""),
            error=problems.get(field.name), step="any" if field.type == "number" else "1"))
    return out


def submission(posted: FormData) -> dict[str, Any]:
    """The answers in a browser submission: every posted field but the CSRF token, a list where a field
    came more than once (ticked checkboxes). The engine's form decides what is a field and what is valid."""
    data: dict[str, Any] = {}
    for name in posted.keys():
        if name == "csrf":
            continue
        values = [str(v) for v in posted.getlist(name)]
        data[name] = values if len(values) > 1 else values[0]
    return data


def _shown(field, value: Any, lang: str, words: dict[str, str]) -> str:
    """A stored value in words: choices by their label, booleans as yes/no, lists joined."""
    labels = {c.value: pick(c.label, lang, c.value) for c in field.choices} if field else {}
    if isinstance(value, bool):
        return words["yes"] if value else words["no"]
    if isinstance(value, (list, tuple)):
        return ", ".join(labels.get(str(v), str(v)) for v in value)
    return labels.get(str(value), "" if value is None else str(value))


def answers(form, data: dict[str, Any] | None, lang: str, words: dict[str, str]) -> list[tuple[str, str]]:
    """A completed task's answers as (label, shown value) pairs in the form's field order."""
    data = data or {}
    return [(pick(f.label, lang, f.name), _shown(f, data[f.name], lang, words)) for f in form.fields if f.name in data]


def case_data(forms, data: dict[str, Any], lang: str, words: dict[str, str]) -> list[tuple[str, str, str]]:
    """A case's data as (label, shown value, variable name), labelled by whichever of the process's forms
    asks for it; process settings and computed variables keep their names."""
    by_name = {f.name: f for form in forms for f in form.fields}
    rows = []
    for name, value in data.items():
        field = by_name.get(name)
        rows.append((pick(field.label, lang, name) if field else name, _shown(field, value, lang, words), name))
    return rows
