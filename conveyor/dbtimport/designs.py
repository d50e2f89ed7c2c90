"""Design documents from dbt properties: columns, source tables, and their YAML text."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Protocol

import yaml

from conveyor.dbtimport.dbtproject import Entry, SourceTable, Spot
from conveyor.dbtimport.report import ImportReport
from conveyor.design.types import parse_type


class Importer(Protocol):
    """What building a design needs of the conversion: the report and the tests."""

    report: ImportReport

    def skip(self, spot: Spot | str, what: str, why: str) -> None: ...

    def note(self, spot: Spot | str, what: str, why: str) -> None: ...

    def tests(
        self, data: dict[str, Any], entry: Entry, loc: tuple[str | int, ...], column: str | None, what: str
    ) -> list[Any]: ...


_COLUMN_KEYS = {"name", "description", "data_type", "tests", "data_tests", "meta", "tags", "quote", "docs"}
_TABLE_KEYS = {"name", "identifier", "description", "columns", "tests", "data_tests", "freshness",
               "loaded_at_field", "meta", "tags", "quoting", "docs"}  # fmt: skip
_SOURCE_KEYS = {"name", "schema", "database", "description", "tables", "freshness", "loaded_at_field", "meta",
                "tags", "loader", "quoting", "config", "overrides"}  # fmt: skip
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def qualified(schema: str, table: str) -> str:
    """``schema.table`` as SQL, each part quoted only when it must be."""
    return ".".join(p if _PLAIN.match(p) else '"' + p.replace('"', '""') + '"' for p in (schema, table))


def column_design(
    importer: Importer, data: dict[str, Any], entry: Entry, loc: tuple[str | int, ...], what: str, *, typed: bool
) -> dict[str, Any]:
    """One column: name, type (source tables: from ``data_type``), description, tests."""
    name = str(data.get("name"))
    column: dict[str, Any] = {"name": name}
    for key in data:
        if key not in _COLUMN_KEYS:
            importer.skip(entry.spot(*loc, key), f"{what}.{name}", f"{key}: is not converted")
    if typed and data.get("data_type") is not None:
        text = " ".join(str(data["data_type"]).lower().split())
        try:
            parse_type(text)
            column["type"] = text
        except ValueError:
            importer.note(entry.spot(*loc, "data_type"), f"{what}.{name}", f'data_type "{text}" has no design type')
    description = data.get("description")
    if description is not None and str(description).strip():
        if "{{" in str(description) or "{%" in str(description):
            importer.skip(entry.spot(*loc, "description"), f"{what}.{name}", "a description with Jinja is left out")
        else:
            column["description"] = str(description).strip()
    tests = importer.tests(data, entry, loc, name, what)
    if tests:
        column["tests"] = tests
    return column


def source_design(importer: Importer, table: SourceTable, what: str) -> dict[str, Any] | None:
    """The design of one dbt source table (kind source), or None when it cannot be one."""
    data, source = table.entry.data, table.source_entry.data
    if "." in table.source or "." in table.name:
        importer.skip(table.entry.spot(), what, "a name with a dot cannot be a Conveyor relation")
        return None
    for key in data:
        if key not in _TABLE_KEYS:
            importer.skip(table.entry.spot(key), what, f"{key}: is not converted")
    if table.entry.loc[-1] == 0:  # once per source
        for key in source:
            if key not in _SOURCE_KEYS:
                importer.skip(table.source_entry.spot(key), f"source {table.source}", f"{key}: is not converted")
    design: dict[str, Any] = {"name": f"{table.source}.{table.name}", "kind": "source"}
    description = data.get("description")
    if description is not None and str(description).strip() and "{{" not in str(description):
        design["description"] = str(description).strip()
    design["source_table"] = qualified(table.upstream_schema, table.identifier)
    columns = [
        column_design(importer, c, table.entry, ("columns", i), what, typed=True)
        for i, c in enumerate(data.get("columns") or [])
        if isinstance(c, dict)
    ]
    if columns:
        design["columns"] = columns
    if not columns or not all("type" in c for c in columns):
        step = f"conveyor bootstrap --update {table.source}"
        if step not in importer.report.next_steps:
            importer.report.next_steps.append(step)
    tests = importer.tests(data, table.entry, (), None, what)
    if tests:
        design["tests"] = tests
    freshness = _freshness(importer, table, what)
    if freshness:
        design["freshness"] = freshness
    return design


def _freshness(importer: Importer, table: SourceTable, what: str) -> dict[str, Any] | None:
    data, source = table.entry.data, table.source_entry.data
    spec = data["freshness"] if "freshness" in data else source.get("freshness")
    if not isinstance(spec, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("warn_after", "error_after"):
        value = spec.get(key)
        if isinstance(value, dict) and value.get("count") is not None and value.get("period"):
            out[key] = f"{value['count']} {value['period']}s"
    if out:
        out["measure"] = "extract"
        spot = table.entry.spot("freshness") if "freshness" in data else table.source_entry.spot("freshness")
        importer.note(spot, what, "freshness is measured from the last successful extract, not loaded_at_field")
    return out or None


class _Dumper(yaml.SafeDumper):
    pass


class _Flow(dict[str, Any]):
    """A mapping written on one line: a test's arguments."""


def _flow(dumper: yaml.SafeDumper, value: _Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=True)


def _flow_tests(design: dict[str, Any]) -> dict[str, Any]:
    out = dict(design)
    if "tests" in out:
        out["tests"] = [_Flow(t) if isinstance(t, dict) else t for t in out["tests"]]
    if "columns" in out:
        out["columns"] = [_flow_tests(c) for c in out["columns"]]
    return out


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:float", str(value))


_Dumper.add_representer(Decimal, _decimal)
_Dumper.add_representer(_Flow, _flow)


def design_yaml(design: dict[str, Any], header: str) -> str:
    """A design document as YAML, keys in the order written, with a comment saying where it came from."""
    text = yaml.dump(_flow_tests(design), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return f"# {header}\n{text}"
