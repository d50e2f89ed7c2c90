"""dbt's generic tests as Conveyor tests: ``unique``, ``not_null``, ``accepted_values``, ``relationships``.

dbt writes a test as a name (``- not_null``) or as a one-key mapping whose value holds the
test's arguments and its config, either mixed (``values: [...]``, ``severity: warn``), under
``arguments:`` (dbt 1.10) or under ``config:``. Conveyor's form is the same shape
(conveyor/design/tests.py), so a test converts one key at a time; what has no Conveyor
meaning makes the test :class:`TestNotConverted` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from conveyor.dbtimport.jinja import Call, NotConverted, parse_call
from conveyor.design.tests import TestEntry

KINDS = ("unique", "not_null", "accepted_values", "relationships")
_ARGUMENTS = {
    "unique": {"column_name"},
    "not_null": {"column_name"},
    "accepted_values": {"column_name", "values", "quote"},
    "relationships": {"column_name", "to", "field"},
}
_CONFIG = {"severity", "where", "name", "enabled", "tags", "meta", "description", "alias", "store_failures",
           "warn_if", "error_if", "fail_calc", "limit", "database", "schema"}  # fmt: skip
_HARMLESS = {"tags", "meta", "description", "alias", "store_failures", "database", "schema", "limit"}
_DEFAULT_THRESHOLD = {"warn_if": "!=0", "error_if": "!=0", "fail_calc": "count(*)"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TestNotConverted(Exception):
    """A dbt test Conveyor cannot express; the message says why."""


class Disabled(Exception):
    """A test with ``enabled: false``: dbt does not run it, so it is left out."""


def convert_test(entry: Any, column: str | None, resolve: Callable[[Call], str]) -> Any:
    """One dbt test entry as a Conveyor test entry (a name or a one-key mapping).

    ``column`` is the column whose ``tests:`` list holds it (None for a model's tests);
    ``resolve`` turns the ``ref()``/``source()`` of a relationships test into a relation name.
    """
    raw: Any
    if isinstance(entry, str):
        kind, raw = entry, {}
    elif isinstance(entry, dict) and len(entry) == 1:
        kind, raw = next(iter(entry.items()))
        raw = {} if raw is None else raw
    else:
        raise TestNotConverted("a test is a name or a mapping with one key")
    kind = str(kind)
    if kind not in KINDS:
        raise TestNotConverted(f'"{kind}" is not one of the generic tests Conveyor has ({", ".join(KINDS)})')
    if not isinstance(raw, dict):
        raise TestNotConverted(f"the arguments of {kind} are not a mapping")
    arguments, config = _split(kind, raw)
    if config.get("enabled") is False:
        raise Disabled
    out: dict[str, Any] = {}
    _target(arguments, column, out)
    if kind == "accepted_values":
        out["values"] = _values(arguments)
    elif kind == "relationships":
        out["to"], out["field"] = _relationship(arguments, resolve)
    _config(config, out)
    result: Any = {kind: out} if out else kind
    try:
        TestEntry.model_validate(result)
    except ValidationError as exc:
        raise TestNotConverted(f"Conveyor refuses the converted test: {exc.errors()[0]['msg']}") from None
    return result


def _split(kind: str, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arguments, config) from the mixed, ``arguments:`` and ``config:`` forms."""
    arguments = dict(raw.get("arguments") or {})
    config = dict(raw.get("config") or {})
    for key, value in raw.items():
        if key in ("arguments", "config"):
            continue
        if key in _ARGUMENTS[kind]:
            arguments[key] = value
        elif key in _CONFIG:
            config[key] = value
        else:
            raise TestNotConverted(f'{kind} has an argument "{key}" Conveyor has no meaning for')
    unknown = sorted(set(arguments) - _ARGUMENTS[kind]) + sorted(set(config) - _CONFIG)
    if unknown:
        raise TestNotConverted(f'{kind} has "{unknown[0]}", which Conveyor has no meaning for')
    return arguments, config


def _target(arguments: dict[str, Any], column: str | None, out: dict[str, Any]) -> None:
    name = arguments.get("column_name")
    if name is None:
        if column is None:
            raise TestNotConverted("a model-level test needs column_name")
        return
    text = str(name)
    if _IDENTIFIER.match(text):
        if text != column:
            out["column"] = text
    else:
        out["expression"] = text


def _values(arguments: dict[str, Any]) -> list[Any]:
    values = arguments.get("values")
    if not isinstance(values, list) or not values:
        raise TestNotConverted("accepted_values needs a list of values")
    if arguments.get("quote", True) is not False:
        return [v if isinstance(v, str | int | bool) else str(v) for v in values]
    return [_unquoted(v) for v in values]


def _unquoted(value: Any) -> Any:
    """A value of ``quote: false``, which dbt pastes into the SQL: a number, a boolean or a 'string'."""
    if isinstance(value, bool | int):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if len(text) >= 2 and text[0] == text[-1] == "'" and "'" not in text[1:-1].replace("''", ""):
        return text[1:-1].replace("''", "'")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise TestNotConverted(f"accepted_values with quote: false holds the SQL expression {text!r}") from None
    return int(number) if number == number.to_integral_value() and "." not in text else number


def _relationship(arguments: dict[str, Any], resolve: Callable[[Call], str]) -> tuple[str, str]:
    to, field = arguments.get("to"), arguments.get("field")
    if not isinstance(to, str) or not isinstance(field, str):
        raise TestNotConverted("relationships needs to: and field:")
    call = parse_call(to)
    if call is None or call.name not in ("ref", "source"):
        raise TestNotConverted(f"relationships to {to!r}: only ref() and source() convert")
    try:
        return resolve(call), field
    except NotConverted as exc:
        raise TestNotConverted(f"relationships: {exc}") from None


def _config(config: dict[str, Any], out: dict[str, Any]) -> None:
    for key, default in _DEFAULT_THRESHOLD.items():
        if key in config and "".join(str(config[key]).split()).lower() != default:
            raise TestNotConverted(f"{key}: {config[key]} (Conveyor fails a test on any failing row)")
    severity = config.get("severity")
    if severity is not None:
        if str(severity).lower() not in ("warn", "error"):
            raise TestNotConverted(f'severity "{severity}" is neither warn nor error')
        if str(severity).lower() == "warn":
            out["severity"] = "warn"
    where = config.get("where")
    if where is not None:
        if "{{" in str(where) or "{%" in str(where):
            raise TestNotConverted("its where: holds Jinja")
        out["where"] = str(where)
    if config.get("name"):
        out["name"] = str(config["name"])
