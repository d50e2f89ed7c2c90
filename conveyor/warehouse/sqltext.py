"""Quoting names and strings into SQL text, the same for every warehouse Conveyor speaks to."""

from __future__ import annotations


def quote(identifier: str) -> str:
    """Quote an identifier the SQL-standard way, doubling embedded double quotes."""
    return '"' + identifier.replace('"', '""') + '"'


def qualified(name: str) -> str:
    """Quote a "schema.table" name."""
    schema, _, table = name.partition(".")
    return f"{quote(schema)}.{quote(table)}"


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"
