"""The restricted Python every BPMN expression runs in.

Gateway conditions, script tasks, timer expressions and DMN cells are compiled with RestrictedPython
and run against the task data with only a small, explicit set of names available: RestrictedPython's
``safe_builtins``, a few harmless built-ins (``len``, ``sorted``, ``dict``, ...), and ``date``,
``datetime`` and ``timedelta``. Imports, names and attributes starting with ``_``, and calls to any
other Python built-in (``open``, ``eval``, ``getattr``, ``globals``, ...) are refused with a
:class:`SandboxViolation` whose message says what was refused and why, before anything runs.

Expressions never see the wall clock. Inside a command they get ``now``, the command's injected
time (aware, UTC), and ``deadline(duration, working=False)``, the ISO 8601 moment a duration after
``now`` in calendar or working time (for timer dates such as ``deadline("P2D", working=True)``).
Any attribute named ``now``, ``utcnow`` or ``today`` (``datetime.now()``, ``date.today()``, or the
same through an alias) is refused when compiled: every attribute access goes through the compiled
code's attribute nodes, so checking them catches every route to the wall clock.

Nothing here limits CPU time or memory: an expression can still loop or allocate for a long time.
"""

import ast
import builtins
import functools
import operator
from datetime import date, datetime, timedelta

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from . import clock
from .calendars import CALENDAR, WORKING


class SandboxViolation(Exception):
    """An expression or script tried something qproc expressions may not do; the message says what."""


_INPLACE_OPERATORS = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "@=": operator.imatmul,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
}


def _inplacevar(op, target, value):
    """RestrictedPython rewrites ``x += y`` to ``x = _inplacevar_('+=', x, y)``."""
    return _INPLACE_OPERATORS[op](target, value)


_WALL_CLOCK = frozenset({"now", "utcnow", "today"})
_WALL_CLOCK_ADVICE = "reads the wall clock; qproc expressions use the variable 'now', the engine's clock"


def _deadline(duration: str, working: bool = False) -> str:
    """The ISO 8601 moment ``duration`` after the command's ``now``, in calendar or working time."""
    return clock.calendar().add(clock.now(), duration, WORKING if working else CALENDAR).isoformat()


def _clock_names() -> dict:
    """The names that depend on the running command: ``now`` and ``deadline`` (none outside a command)."""
    return {"now": clock.now(), "deadline": _deadline} if clock.is_set() else {}


_HARMLESS_BUILTINS = (
    len, min, max, sum, any, all, sorted, round, abs, str, int, float, bool,
    list, dict, set, tuple, range, enumerate, zip, isinstance,
)

# Everything an expression can see besides the task data. It is installed as ``__builtins__`` so
# that task data may shadow these names (a field called ``date`` is fine), and the guards that
# RestrictedPython's compiled code calls live here too.
_BUILTINS = {
    **safe_builtins,
    **{function.__name__: function for function in _HARMLESS_BUILTINS},
    "date": date,
    "datetime": datetime,
    "timedelta": timedelta,
    "_getattr_": safer_getattr,
    "_getitem_": operator.getitem,
    "_getiter_": iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    "_apply_": lambda function, *args, **kwargs: function(*args, **kwargs),
}

_UNAVAILABLE_BUILTINS = {name for name in dir(builtins) if not name.startswith("_")} - _BUILTINS.keys()


def _subject(source, mode, node=None):
    """How a problem message names the offending code: the expression, or the script (line)."""
    if mode == "eval":
        return f"expression {source.strip()!r}"
    if node is None:
        return "script"
    return f"script line {node.lineno} {source.splitlines()[node.lineno - 1].strip()!r}"


def _violations(source, mode, tree):
    """Yield a message for each import, '_' name and call of an unavailable built-in in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield f"{_subject(source, mode, node)}: imports are not allowed in qproc expressions"
            continue
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        else:
            name = ""
        if isinstance(node, ast.Attribute) and name in _WALL_CLOCK:
            yield f"{_subject(source, mode, node)} uses {name!r}, which {_WALL_CLOCK_ADVICE}"
        if name.startswith("_") and name != "_":
            yield (f"{_subject(source, mode, node)} uses {name!r}: "
                   "names starting with '_' are not allowed in qproc expressions")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _UNAVAILABLE_BUILTINS:
            yield (f"{_subject(source, mode, node)} uses {node.func.id!r}, "
                   "which is not available in qproc expressions")


@functools.lru_cache(maxsize=4096)
def _compile(source, mode):
    """Compile ``source`` for ``mode`` under the sandbox rules.

    Returns ``(code, ())`` when allowed, ``(None, problems)`` when refused; raises SyntaxError.
    """
    if mode == "eval":
        source = source.lstrip(" \t")  # as eval() does
    tree = ast.parse(source, mode=mode)
    problems = tuple(dict.fromkeys(_violations(source, mode, tree)))  # de-duplicated, in order
    if problems:
        return None, problems
    result = (compile_restricted_eval if mode == "eval" else compile_restricted_exec)(tree)
    return result.code, tuple(f"{_subject(source, mode)} is not allowed: {error}" for error in result.errors)


def _restricted_code(source, mode):
    """The compiled code for ``source``; raises SandboxViolation if refused, SyntaxError if invalid."""
    code, problems = _compile(source, mode)
    if problems:
        raise SandboxViolation("; ".join(problems))
    return code


def check_expression(source: str, mode: str) -> list[str]:
    """Compile ``source`` without running it and return what is wrong with it, or ``[]`` if nothing.

    ``mode`` is ``'eval'`` for an expression (condition, timer, DMN cell) or ``'exec'`` for a script.
    Syntax errors and sandbox violations are both reported as messages; nothing about the source
    makes this raise.
    """
    if mode not in ("eval", "exec"):
        raise ValueError(f"mode must be 'eval' or 'exec', not {mode!r}")
    try:
        return list(_compile(source, mode)[1])
    except SyntaxError as error:
        where = f" (line {error.lineno})" if error.lineno else ""
        return [f"{_subject(source, mode)} is not valid Python: {error.msg}{where}"]


def data_names(source: str) -> set[str]:
    """The names an expression reads from the task data: every name it uses that the sandbox does not provide.

    ``now`` and ``deadline`` count as provided; names bound inside the expression (comprehension
    variables) are left out. ``source`` must compile (see :func:`check_expression`).
    """
    tree = ast.parse(source.lstrip(" \t"), mode="eval")
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return read - bound - _BUILTINS.keys() - {"now", "deadline"}


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """A SpiffWorkflow script environment that runs every expression and script in the sandbox.

    Data semantics are those of Spiff's ``TaskDataEnvironment``: ``evaluate`` reads the task data
    without changing it; ``execute`` writes the script's assignments into the task data and leaves
    no built-ins, functions or helpers behind in it.
    """

    def evaluate(self, expression, context, external_context=None):
        """Return the value of ``expression`` over ``context`` (the task data) and ``external_context``."""
        code = _restricted_code(expression, "eval")
        namespace = {**self.globals, **(external_context or {}), **context,
                     "__builtins__": {**_BUILTINS, **_clock_names()}}
        return eval(code, namespace)

    def execute(self, script, context, external_context=None):
        """Run ``script`` with ``context`` (the task data) as its namespace; return True.

        Raises ValueError, before running anything, if task data has the name of a helper
        (``external_context`` or environment globals): removing the helper afterwards would lose it.
        """
        code = _restricted_code(script, "exec")
        helpers = {**self.globals, **(external_context or {})}
        clashes = helpers.keys() & context.keys()
        if clashes:
            raise ValueError(f"task data {sorted(clashes)} has the name of a predefined function; rename it")
        context.update(helpers, __builtins__={**_BUILTINS, **_clock_names()})
        try:
            exec(code, context)
        finally:
            for key in list(context):
                if key == "__builtins__" or key in helpers or callable(context[key]):
                    del context[key]
        return True


def make_script_engine() -> PythonScriptEngine:
    """A Spiff script engine whose expressions and scripts all run in a :class:`SandboxEnvironment`."""
    return PythonScriptEngine(environment=SandboxEnvironment())
