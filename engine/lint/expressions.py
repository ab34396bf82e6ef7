"""Expressions: gateway conditions, scripts and timers compile in the sandbox; timer values are ISO 8601.

A timer value is a Python expression: ``"PT2H"`` with quotes, a variable, or ``f"PT{hours}H"``.
Unquoted, ``PT2H`` is read as a variable name, so it is reported with the quoted fix. A quoted
value must be what its timer kind expects: a duration (``"P1D"``, not ``"PT1D"``: days go before
the T), a date and time, or a recurring interval (``"R3/PT1H"``).
"""

import ast
import re
from datetime import datetime, timezone

from ..calendars import DurationError, parse_duration, parse_moment, parse_recurrence
from ..sandbox import check_expression, data_names
from . import Problem
from .bpmn import SPIFF, child, describe, is_bpmn, line, local_name, text

_TIMER_KINDS = {"timeDuration": "duration", "timeDate": "date", "timeCycle": "cycle"}
_ISO_LOOKING = re.compile(r"P[0-9YMWDTHS.,]*[0-9][0-9YMWDTHS.,]*|R[0-9]*/\S*", re.IGNORECASE)
_EXAMPLES = {"duration": 'e.g. "PT2H", "P1D", "P1DT12H"', "date": 'e.g. "2026-12-31T17:00:00+08:00"',
             "cycle": 'e.g. "R3/PT1H" or "R/2026-01-05T09:00:00+08:00/P1W"'}
_SOME_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)  # recurrences are parsed against a time to check syntax only


def check(file: str, root) -> list[Problem]:
    """Conditions, scripts (script tasks, spiff pre- and post-scripts) and timer expressions of one BPMN file."""
    problems: list[Problem] = []
    for element in root.iter():
        if is_bpmn(element, "conditionExpression"):
            owner = element.getparent()
            problems += [Problem(file, line(element), f"condition of {describe(owner)}: {message}")
                         for message in check_expression(text(element), "eval")]
        elif is_bpmn(element, "script") and is_bpmn(element.getparent(), "scriptTask"):
            problems += [Problem(file, line(element), f"{describe(element.getparent())}: {message}")
                         for message in check_expression(element.text or "", "exec")]
        elif isinstance(element.tag, str) and element.tag in (f"{{{SPIFF}}}preScript", f"{{{SPIFF}}}postScript"):
            owner = element.getparent().getparent()
            problems += [Problem(file, line(element), f"{local_name(element)} of {describe(owner)}: {message}")
                         for message in check_expression(element.text or "", "exec")]
        elif is_bpmn(element, "timerEventDefinition"):
            event = element.getparent()
            for kind_tag, kind in _TIMER_KINDS.items():
                value = child(element, kind_tag)
                if value is not None:
                    problems += [Problem(file, line(value), f"timer '{event.get('id')}': {message}")
                                 for message in timer_problems(text(value), kind)]
    return problems


def timer_problems(expression: str, kind: str) -> list[str]:
    """What is wrong with a timer expression of ``kind`` ('duration', 'date' or 'cycle'); [] if nothing."""
    if not expression:
        return [f"has no {kind} value ({_EXAMPLES[kind]}, with quotes)"]
    problems = check_expression(expression, "eval")
    if problems:
        if _ISO_LOOKING.fullmatch(expression.strip()) or _looks_like_moment(expression):
            return [f"{expression.strip()} is not a Python expression; write \"{expression.strip()}\" with quotes "
                    "(timer values are Python expressions)"]
        return [f"{problems[0]} (timer values are Python expressions)"]
    bare = sorted(name for name in data_names(expression) if _ISO_LOOKING.fullmatch(name))
    if bare:
        return [f"{name} is read as a variable name; write \"{fixed_value(name, kind) or name}\" with quotes "
                "(timer values are Python expressions)" for name in bare]
    tree = ast.parse(expression.strip(), mode="eval").body
    if isinstance(tree, ast.Constant) and isinstance(tree.value, str):
        return _value_problems(tree.value, kind)
    return []


def _looks_like_moment(expression: str) -> bool:
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}(T\S*)?", expression.strip()))


def _value_problems(value: str, kind: str) -> list[str]:
    try:
        _parse(value, kind)
    except (DurationError, ValueError, TypeError, OverflowError):
        fix = fixed_value(value, kind)
        advice = f": write \"{fix}\" ({_why(value)})" if fix else f" ({_EXAMPLES[kind]})"
        return [f"\"{value}\" is not a valid ISO 8601 {_KIND_WORDS[kind]}{advice}"]
    return []


def _parse(value: str, kind: str) -> None:
    if kind == "duration":
        parse_duration(value)
    elif kind == "date":
        parse_moment(value)
    else:
        parse_recurrence(value, _SOME_TIME)


_KIND_WORDS = {"duration": "duration", "date": "date and time", "cycle": "recurring interval"}


def _why(value: str) -> str:
    if any(re.search(r"\d+[YWD]", c.partition("T")[2]) for c in value.upper().split("/") if c.startswith("P")):
        return "days, weeks and years go before the T"
    return "hours, minutes and seconds go after a T"


def fixed_value(value: str, kind: str) -> str | None:
    """``value`` with each duration part on its side of the T (``PT1D`` → ``P1D``), if that makes it a valid ``kind``
    ('duration' or 'cycle'); None when that does not help."""
    if kind == "date":
        return None
    components = value.strip().upper().split("/")
    fixed = "/".join(_fixed_duration(c) if c.startswith("P") else c for c in components)
    if fixed == value.strip().upper() or _unparsable(fixed, kind):
        return None
    return fixed


def _fixed_duration(value: str) -> str:
    match = re.fullmatch(r"P((?:\d+[YMWDHS])*)(?:T((?:\d+[YMWDHS])*))?", value)
    if match is None:
        return value
    date, time = [], []
    for side, part in ((date, match.group(1)), (time, match.group(2) or "")):
        for token in re.findall(r"\d+[YMWDHS]", part):
            unit = token[-1]
            (date if unit in "YWD" else time if unit in "HS" else side).append(token)
    date.sort(key=lambda token: "YMWD".index(token[-1]))
    time.sort(key=lambda token: "HMS".index(token[-1]))
    return "P" + "".join(date) + ("T" + "".join(time) if time else "")


def _unparsable(value: str, kind: str) -> bool:
    """Whether ``value`` is not a valid ``kind`` value."""
    try:
        _parse(value, kind)
    except (DurationError, ValueError, TypeError, OverflowError):
        return True
    return False
