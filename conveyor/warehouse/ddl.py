"""DDL generated from table designs."""

from __future__ import annotations

from conveyor.design.models import TableDesign
from conveyor.warehouse import render_type
from conveyor.warehouse.sqltext import literal, qualified, quote


def column_definitions(design: TableDesign, dialect: str) -> list[str]:
    """``"name" type [NOT NULL]`` for every loaded column, types spelled by the dialect's warehouse class."""
    lines = []
    for column in design.loaded_columns:
        spelled = render_type(column.sql_type, dialect, column=column.name, design=design.name)
        line = f"{quote(column.name)} {spelled}"
        if column.not_null or column.name in design.constraints.primary_key:
            line += " NOT NULL"
        lines.append(line)
    return lines


def create_table(design: TableDesign, dialect: str, *, name: str | None = None, keys: bool = False) -> str:
    """CREATE TABLE for a design; ``keys`` adds PRIMARY KEY and UNIQUE clauses."""
    parts = column_definitions(design, dialect)
    if keys and design.constraints.primary_key:
        parts.append("PRIMARY KEY (" + ", ".join(quote(c) for c in design.constraints.primary_key) + ")")
    if keys:
        parts.extend("UNIQUE (" + ", ".join(quote(c) for c in cols) + ")" for cols in design.constraints.unique)
    body = ",\n    ".join(parts)
    return f"CREATE TABLE {qualified(name or design.name)} (\n    {body}\n)"


def comments(design: TableDesign, *, name: str | None = None, view: bool = False) -> list[str]:
    """COMMENT ON statements from the design's descriptions."""
    target = qualified(name or design.name)
    statements = []
    if design.description:
        kind = "VIEW" if view else "TABLE"
        statements.append(f"COMMENT ON {kind} {target} IS {literal(design.description)}")
    for column in design.loaded_columns:
        if column.description:
            statements.append(f"COMMENT ON COLUMN {target}.{quote(column.name)} IS {literal(column.description)}")
    return statements
