"""`--fail-if EXPR`: a small, safe condition language over a report's metrics, for CI.

An expression like `mql_change_pct > 20 or leads_changed > 50` is parsed with Python's `ast`
and only numbers, metric names, comparisons, `and`/`or`/`not`, `+ - * /`, unary minus and
`abs()` are allowed — nothing is `eval`ed, so a CI variable cannot run code. The expression is
checked before any replay, so a typo fails in a second instead of after the whole history.
A metric that has no value (a percentage of a zero baseline) compares as infinitely large
when the change is an increase, which is what a gate on "more MQLs than allowed" wants.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection, Mapping
from typing import Any

from stream.reports.errors import ReportError

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class FailIf:
    """A checked --fail-if expression; `holds(metrics)` evaluates it."""

    def __init__(self, text: str, names: Collection[str]) -> None:
        self.text = text
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise ReportError(
                f"--fail-if {text!r}: not an expression ({exc.msg}); "
                "want e.g. 'mql_change_pct > 20' or 'leads_changed > 10 and mql_change < 0'"
            ) from None
        self.names = sorted(_check(self.tree, text, frozenset(names)))

    def holds(self, metrics: Mapping[str, float | None]) -> bool:
        """True when the condition is met (the command then exits non-zero)."""
        return bool(_eval(self.tree, metrics))

    def explain(self, metrics: Mapping[str, float | None]) -> str:
        """The expression with the values of the names it uses, for the failure message."""
        values = ", ".join(f"{n} = {_show(metrics.get(n))}" for n in self.names)
        return f"{self.text!r} ({values})" if values else repr(self.text)


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _check(node: ast.AST, text: str, names: frozenset[str]) -> set[str]:
    """Refuse anything outside the small language; return the metric names used."""
    used: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            if child.id == "abs":
                continue
            if child.id not in names:
                raise ReportError(
                    f"--fail-if {text!r}: unknown metric {child.id!r}; "
                    f"want one of {', '.join(sorted(names))}"
                )
            used.add(child.id)
        elif isinstance(child, ast.Call):
            if not (
                isinstance(child.func, ast.Name)
                and child.func.id == "abs"
                and len(child.args) == 1
                and not child.keywords
            ):
                raise ReportError(f"--fail-if {text!r}: only abs(x) may be called")
        elif isinstance(child, ast.Constant):
            if isinstance(child.value, bool) or not isinstance(child.value, int | float):
                raise ReportError(f"--fail-if {text!r}: {child.value!r} is not a number")
        elif isinstance(child, ast.BinOp):
            if type(child.op) not in _BINARY:
                raise ReportError(f"--fail-if {text!r}: only + - * / are allowed")
        elif isinstance(child, ast.Compare):
            if any(type(op) not in _COMPARE for op in child.ops):
                raise ReportError(f"--fail-if {text!r}: only > >= < <= == != compare")
        elif not isinstance(
            child,
            ast.BoolOp
            | ast.And
            | ast.Or
            | ast.UnaryOp
            | ast.Not
            | ast.USub
            | ast.UAdd
            | ast.Load
            | ast.cmpop
            | ast.operator,
        ):
            raise ReportError(
                f"--fail-if {text!r}: {type(child).__name__} is not allowed; use numbers, "
                "metric names, comparisons, and/or/not, + - * / and abs()"
            )
    if not isinstance(node, ast.Compare | ast.BoolOp) and not (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        raise ReportError(f"--fail-if {text!r}: want a condition, e.g. 'mql_change_pct > 20'")
    return used


def _eval(node: ast.AST, metrics: Mapping[str, float | None]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        value = metrics.get(node.id)
        return math.inf if value is None else value
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, metrics)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, metrics), _eval(node.right, metrics)
        if isinstance(node.op, ast.Div) and right == 0:
            return math.inf if left > 0 else (-math.inf if left < 0 else 0.0)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call):
        return abs(_eval(node.args[0], metrics))
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, metrics) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, metrics)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, metrics)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise ReportError(f"--fail-if: cannot evaluate {type(node).__name__}")  # refused by _check
