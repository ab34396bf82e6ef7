"""Decision tables: every cell compiles as Spiff will run it, the rules cover the inputs, UNIQUE rules do not overlap.

Spiff runs an input cell as ``(input) == (cell)`` when the cell is an expression (``"noise"``,
``3``), as ``input`` followed by the cell when it starts with an operator (``< 5``, ``>= 10``), and
with ``?`` standing for the input when it has one (``4 < ? < 6``). ``-`` or an empty cell matches
anything.

Coverage is worked out for inputs whose cells are all literals (strings, booleans, numbers),
numeric comparisons or ``-``: booleans range over True and False, strings over the input's
``inputValues`` (or else the strings the rules name), numbers over the number line cut at every
number the rules name. A combination no rule matches is a gap (a warning: at run time it is a
clear error, and the form may rule it out); two rules of a UNIQUE table that can match the same
input overlap (an error: which one wins is undefined). A table with any other kind of cell is
not analysed for coverage.
"""

import ast
import json
import operator
import re
from dataclasses import dataclass

from ..sandbox import check_expression
from . import WARNING, Problem
from .bpmn import line, local_name

ANY = "any"  # a cell that matches every value (a sentinel: None means "cannot analyse")
_QUESTION_MARK = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")  # a '?' outside quotes, as Spiff finds it
_OPERATORS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
              ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
              ast.NotIn: lambda a, b: a not in b}
_VARIABLE = "dmninputexpr"
_MAX_STEPS = 20000  # coverage of a huge table is left unanalysed rather than slow
_MAX_GAPS = 20


def check(file: str, root) -> list[Problem]:
    """Every decision table of one DMN file: cells compile, rules cover the inputs, UNIQUE rules do not overlap."""
    problems: list[Problem] = []
    for table in (el for el in root.iter() if local_name(el) == "decisionTable"):
        problems += _table(file, table)
    return problems


def _children(element, name: str) -> list:
    return [el for el in element if local_name(el) == name]


def _text(element, *path: str) -> str:
    for name in path:
        found = _children(element, name) if element is not None else []
        element = found[0] if found else None
    return (element.text or "").strip() if element is not None else ""


def _table(file: str, table) -> list[Problem]:
    decision = f"decision '{table.getparent().get('id') or '?'}'"
    inputs = _children(table, "input")
    expressions = [_text(i, "inputExpression", "text") for i in inputs]
    labels = [i.get("label") or expression or f"input {n}" for n, (i, expression) in
              enumerate(zip(inputs, expressions), 1)]
    problems = []
    for number, (element, expression, label) in enumerate(zip(inputs, expressions, labels), 1):
        if not expression:
            problems.append(Problem(file, line(element), f"{decision}: input {number} ({label}) has no expression"))
        problems += [Problem(file, line(element), f"{decision}: input {number}: {message}")
                     for message in (check_expression(expression, "eval") if expression else [])]
    rules = _children(table, "rule")
    cells: list[list[str]] = []
    for number, rule in enumerate(rules, 1):
        entries = _children(rule, "inputEntry")
        if len(entries) != len(inputs):
            problems.append(Problem(file, line(rule), f"{decision}: rule {number} has {len(entries)} input cells "
                                    f"for {len(inputs)} inputs"))
            continue
        cells.append([_text(entry, "text") for entry in entries])
        for entry, cell, expression in zip(entries, cells[-1], expressions):
            problems += [Problem(file, line(entry), f"{decision}: rule {number}: {message}")
                         for message in _cell_problems(expression, cell)]
        for entry in _children(rule, "outputEntry"):
            output = _text(entry, "text")
            problems += [Problem(file, line(entry), f"{decision}: rule {number} output: {message}")
                         for message in (check_expression(output, "eval") if output else [])]
    if problems or not inputs:
        return problems
    hit_policy = (table.get("hitPolicy") or "UNIQUE").upper()
    return _coverage(file, table, decision, labels, [line(r) for r in rules], cells, inputs, hit_policy)


def _cell_problems(expression: str, cell: str) -> list[str]:
    """What is wrong with an input cell, compiled as Spiff will run it against ``expression``."""
    if cell in ("", "-"):
        return []
    if _QUESTION_MARK.search(cell):
        return check_expression(_QUESTION_MARK.sub(_VARIABLE, cell), "eval")
    if re.fullmatch(r"[\[\]()]\s*[^.]+\.\.[^.]+\s*[\[\]()]", cell):
        return [f"cell {cell!r} is a FEEL range; cells are Python: write e.g. '1 <= ? <= 10'"]
    if not check_expression(cell, "eval"):
        if isinstance(ast.parse(cell.strip(), mode="eval").body, ast.Tuple):
            return [f"cell {cell!r} is a tuple, which the input never equals; write '? in ({cell})'"]
        return check_expression(f"({expression}) == ({cell})", "eval") if expression else []
    if cell[0].isalpha() or cell[0] == "_":
        return [f"cell {cell!r}: Spiff appends it to the input without a space ({expression}{cell}); "
                f"write it as '? {cell}'"]
    return check_expression(f"{expression} {cell}", "eval")


# --- coverage --------------------------------------------------------------------------------

@dataclass
class _Axis:
    """One input's domain, cut into cells: each cell a representative value and how to say it."""

    label: str
    values: list          # one representative value per cell
    numeric: bool

    def describe(self, cells: frozenset[int]) -> str:
        """The input restricted to ``cells``, in words: ``severity = "high"``, ``10 <= amount < 50``."""
        if not self.numeric:
            chosen = [_literal(self.values[c]) for c in sorted(cells)]
            return f"{self.label} = {chosen[0]}" if len(chosen) == 1 else f"{self.label} in {{{', '.join(chosen)}}}"
        return " or ".join(self._run(run) for run in _runs(sorted(cells)))

    def _run(self, run: tuple[int, int]) -> str:
        first, last = run
        points = self.values[1::2]
        if first == last and first % 2:
            return f"{self.label} = {_literal(points[first // 2])}"
        low = (None if first == 0 else (">", points[first // 2 - 1]) if first % 2 == 0
               else (">=", points[first // 2]))
        high = (None if last == len(self.values) - 1 else ("<", points[last // 2]) if last % 2 == 0
                else ("<=", points[last // 2]))
        if low and high:
            return f"{_literal(low[1])} {'<' if low[0] == '>' else '<='} {self.label} {high[0]} {_literal(high[1])}"
        bound = low or high
        return f"{self.label} {bound[0]} {_literal(bound[1])}" if bound else self.label


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for index in indexes:
        if runs and runs[-1][1] == index - 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return [tuple(run) for run in runs]


def _literal(value) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _predicate(cell: str):
    """The cell as (test on a value, literals it names); ANY for '-'; None when it is not a simple comparison."""
    if cell in ("", "-"):
        return ANY
    try:
        if _QUESTION_MARK.search(cell):
            tree = ast.parse(_QUESTION_MARK.sub(_VARIABLE, cell), mode="eval").body
        else:
            try:
                value = ast.literal_eval(cell)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                tree = ast.parse(f"{_VARIABLE} {cell}", mode="eval").body
            else:
                return ((lambda x: x == value), [value]) if isinstance(value, (str, bool, int, float)) else None
        return _comparison(tree)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None


def _comparison(tree):
    if not isinstance(tree, ast.Compare) or not all(type(op) in _OPERATORS for op in tree.ops):
        return None
    operands = []
    for node in [tree.left, *tree.comparators]:
        if isinstance(node, ast.Name) and node.id == _VARIABLE:
            operands.append(ANY)
        else:
            operands.append((ast.literal_eval(node),))
    if sum(o is ANY for o in operands) != 1:
        return None
    literals = []
    for operand in operands:
        if operand is not ANY:
            value = operand[0]
            members = value if isinstance(value, (tuple, list, set, frozenset)) else (value,)
            if not all(isinstance(m, (str, bool, int, float)) for m in members):
                return None
            literals.extend(members)

    def test(x) -> bool:
        values = [x if o is ANY else o[0] for o in operands]
        try:
            return all(_OPERATORS[type(op)](a, b) for op, a, b in zip(tree.ops, values, values[1:]))
        except TypeError:
            return False
    return test, literals


def _axis(label: str, predicates: list, declared: list | None) -> _Axis | None:
    literals = [lit for p in predicates if p is not ANY for lit in p[1]]
    if all(isinstance(lit, bool) for lit in literals):
        return _Axis(label, [True, False], numeric=False)
    if all(isinstance(lit, str) for lit in literals):
        return _Axis(label, declared or list(dict.fromkeys(literals)), numeric=False)
    if all(isinstance(lit, (int, float)) and not isinstance(lit, bool) for lit in literals):
        points = sorted(set(literals))
        values = [points[0] - 1]
        for point, following in zip(points, points[1:] + [None]):
            values += [point, point + 1 if following is None else (point + following) / 2]
        return _Axis(label, values, numeric=True)
    return None


def _declared_values(input_element) -> list | None:
    text = _text(input_element, "inputValues", "text")
    if not text:
        return None
    try:
        values = ast.literal_eval(f"[{text}]")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return values if values and all(isinstance(v, str) for v in values) else None


def _coverage(file, table, decision, labels, rule_lines, cells, inputs, hit_policy) -> list[Problem]:
    predicates = [[_predicate(cell) for cell in row] for row in cells]
    if any(p is None for row in predicates for p in row):
        return []
    axes = [_axis(label, [row[i] for row in predicates], _declared_values(inputs[i])) for i, label in enumerate(labels)]
    if any(axis is None for axis in axes):
        return []
    matches = [[frozenset(c for c, value in enumerate(axis.values) if p is ANY or p[0](value))
                for p, axis in zip(row, axes)] for row in predicates]
    problems = []
    if hit_policy != "COLLECT":
        gaps = _gaps(axes, matches)
        if gaps is not None:
            problems += [Problem(file, line(table), f"{decision}: no rule matches "
                                 f"{_combination(axes, gap) or 'any input (the table has no rules)'}", WARNING)
                         for gap in gaps[:_MAX_GAPS]]
            if len(gaps) > _MAX_GAPS:
                problems.append(Problem(file, line(table), f"{decision}: {len(gaps) - _MAX_GAPS} more gaps", WARNING))
    if hit_policy == "UNIQUE":
        for later in range(len(matches)):
            for earlier in range(later):
                common = [a & b for a, b in zip(matches[earlier], matches[later])]
                if all(common):
                    problems.append(Problem(file, rule_lines[later], f"{decision}: rules {earlier + 1} and "
                                            f"{later + 1} both match {_combination(axes, common) or 'every input'}, "
                                            "but the hit policy is UNIQUE"))
    return problems


def _combination(axes: list[_Axis], cells: list) -> str:
    return ", ".join(axis.describe(c) for axis, c in zip(axes, cells)
                     if c is not ANY and len(c) < len(axis.values))


def _gaps(axes: list[_Axis], matches: list[list[frozenset[int]]]) -> list[list] | None:
    """Input combinations no rule matches, as few as a split input by input allows; None when too costly."""
    gaps: list[list] = []
    steps = 0

    def walk(index: int, alive: frozenset[int], prefix: list) -> bool:
        nonlocal steps
        steps += 1
        if steps > _MAX_STEPS:
            return False
        if not alive:
            gaps.append(prefix + [ANY] * (len(axes) - index))
            return True
        if index == len(axes):
            return True
        groups: dict[frozenset[int], list[int]] = {}
        for cell in range(len(axes[index].values)):
            groups.setdefault(frozenset(r for r in alive if cell in matches[r][index]), []).append(cell)
        if len(groups) == 1:
            return walk(index + 1, alive, prefix + [ANY])
        return all(walk(index + 1, rules, prefix + [frozenset(group)]) for rules, group in groups.items())

    return gaps if walk(0, frozenset(range(len(matches))), []) else None
