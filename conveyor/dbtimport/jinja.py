"""The little Jinja a convertible dbt model may hold: ``ref()``, ``source()`` and ``config()``.

A model is split into text and Jinja tags (``{{ }}``, ``{% %}``, ``{# #}``). Every
``{{ ref(...) }}`` and ``{{ source(...) }}`` is replaced with the relation's name; a
``{{ config(...) }}`` is removed and its arguments returned; a comment becomes a SQL
comment. Anything else (statements, other expressions, macros) is a :class:`Unsupported`
piece with its line, and the caller does not convert the model.

Expressions are parsed with Python's own parser: a call of a plain name with string
literals is the same in Jinja and in Python, and anything else (``~``, filters, attribute
access, variables) fails to parse or is not a plain call, so it is never guessed at.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_OPEN = re.compile(r"\{([{%#])")
_CLOSE = {"{": "}}", "%": "%}", "#": "#}"}
_LITERAL_NAMES = {"true": True, "false": False, "none": None, "True": True, "False": False, "None": None}


@dataclass(frozen=True)
class Call:
    """A Jinja call of a plain name with literal arguments, e.g. ``ref('orders')``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Unsupported:
    """A piece of a file that cannot be converted: its 1-based line and why."""

    line: int
    reason: str


@dataclass
class Rendered:
    """A model's SQL with its Jinja resolved, its ``config()`` arguments, and what could not be done."""

    sql: str
    config: dict[str, Any] = field(default_factory=dict)
    config_line: int | None = None
    unsupported: list[Unsupported] = field(default_factory=list)


Resolver = Callable[[Call, int], str]
"""Turns a ``ref``/``source`` call at a line into a relation name; raises :class:`NotConverted` when it cannot."""


class NotConverted(Exception):
    """A ``ref``/``source`` call that names something not converted (the message says why)."""


def parse_call(expression: str) -> Call | None:
    """``ref('a', "b")`` -> ``Call("ref", ("a", "b"), {})``; ``None`` for anything that is not such a call."""
    try:
        # in parentheses, newlines anywhere are whitespace, as they are in Jinja
        node = ast.parse(f"(\n{expression.strip()}\n)", mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    try:
        args = tuple(_literal(arg) for arg in node.args)
        kwargs = {str(k.arg): _literal(k.value) for k in node.keywords if k.arg is not None}
    except ValueError:
        return None
    if len(kwargs) != len(node.keywords):  # **kwargs
        return None
    return Call(node.func.id, args, kwargs)


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    value = ast.literal_eval(node) if isinstance(node, ast.Constant | ast.UnaryOp) else None
    if not isinstance(value, str | int | float | bool) or isinstance(value, bytes):
        raise ValueError("not a literal")
    return value


def render(text: str, resolve: Resolver) -> Rendered:
    """Resolve the Jinja of one model (or singular test); see the module's docstring."""
    out: list[str] = []
    result = Rendered("")
    pos = 0
    strip_next = False
    for match in _OPEN.finditer(text):
        if match.start() < pos:
            continue  # inside a tag already consumed
        kind = match.group(1)
        end = text.find(_CLOSE[kind], match.end())
        line = text.count("\n", 0, match.start()) + 1
        before = text[pos : match.start()]
        if strip_next:
            before = _join(before.lstrip(), before)
        if end < 0:
            out.append(before)
            result.unsupported.append(Unsupported(line, f'"{{{kind}" is never closed'))
            pos = len(text)
            break
        inner = text[match.end() : end]
        strip_before = inner.startswith("-")
        strip_next = inner.endswith("-")
        inner = inner.removeprefix("-").removeprefix("+").removesuffix("-").removesuffix("+")
        if strip_before:
            before = _join(before.rstrip(), before, after=True)
        out.append(before)
        out.append(_tag(kind, inner, line, resolve, result))
        pos = end + 2
    rest = text[pos:]
    out.append(_join(rest.lstrip(), rest) if strip_next else rest)
    result.sql = "".join(out)
    return result


def _join(stripped: str, original: str, *, after: bool = False) -> str:
    """Jinja's whitespace control, keeping one space where whitespace went (SQL tokens stay apart)."""
    if stripped == original:
        return original
    return stripped + " " if after else " " + stripped


def _tag(kind: str, inner: str, line: int, resolve: Resolver, result: Rendered) -> str:
    if kind == "#":
        return "" if "*/" in inner else f"/*{inner}*/"
    shown = " ".join(inner.split())
    if kind == "%":
        result.unsupported.append(Unsupported(line, f"Jinja statement {{% {_short(shown)} %}}"))
        return ""
    call = parse_call(inner)
    if call is None or call.name not in ("ref", "source", "config"):
        result.unsupported.append(Unsupported(line, f"Jinja expression {{{{ {_short(shown)} }}}}"))
        return ""
    if call.name == "config":
        if call.args:
            result.unsupported.append(Unsupported(line, "config() with positional arguments"))
        result.config.update(call.kwargs)
        result.config_line = line
        return ""
    try:
        return resolve(call, line)
    except NotConverted as exc:
        result.unsupported.append(Unsupported(line, str(exc)))
        return ""


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def strip_leading_blank_lines(sql: str) -> str:
    """What removing ``{{ config(...) }}`` from a model's top leaves: blank lines, dropped."""
    lines = sql.splitlines(keepends=True)
    while lines and not lines[0].strip():
        lines.pop(0)
    return "".join(lines)
