"""The validate oracle, upstream half: ``conveyor validate`` errors exactly when the extract fails.

For every native type of PostgreSQL, MariaDB and SQLite and every design type, a design
reads a column of that native type as that design type. ``validate`` runs over all of them
against the live upstream, then the real extract runs every one of them; a relation has a
validate error if and only if its extract failed. The upstream rows are NULL, so only the
types decide: whether a value fits is the business of the value checks below, which read
sample values through the same reader and require that

* a pair validate calls ``same`` or ``widening`` (info at most) reads every sample, and
* a pair it calls ``narrowing`` (the ``upstream-type-may-not-fit`` warning) reads at least
  one sample, so the warning is not an error in disguise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.design.types import parse_type
from conveyor.errors import ExtractError
from conveyor.sources import open_source
from conveyor.sources.base import ReadRequest, Source
from conveyor.validate import validate

from .conftest import extract, only_schema, write_project

pytestmark = pytest.mark.slow

#: every design type the matrix reads each native column as
TARGETS = [
    "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "ubigint",
    "decimal(5,2)", "decimal(38,9)", "decimal(50,10)", "real", "double",
    "text", "varchar(2)", "char(3)", "json", "uuid", "bytes",
    "date", "time", "timestamp", "timestamptz", "text[]", "integer[]",
]  # fmt: skip

UUID = "00000000-0000-0000-0000-000000000001"

#: native type -> SQL literals of sample values (the first few small, to fit narrow targets)
PG_NATIVES: dict[str, list[str]] = {
    "smallint": ["1"], "integer": ["1"], "bigint": ["1", "9007199254740993"], "numeric(10,2)": ["1.00", "1.5"],
    "numeric(60,0)": ["1"], "numeric": ["1"], "real": ["1.5"], "double precision": ["1.5"],
    "char(3)": ["'1'", "'abc'"], "varchar(40)": ["'1'", f"'{UUID}'", "'ab'"], "text": ["'1'", f"'{UUID}'", "'ab'"],
    '"char"': ["'a'", "''"], "boolean": ["true"], "date": ["'2024-01-02'"], "time": ["'10:00:00.5'"],
    "timestamp": ["'2024-01-02 10:00:00.5'"], "timestamptz": ["'2024-01-02 10:00:00.5+02'"],
    "uuid": [f"'{UUID}'"], "json": ["'1'", "'{\"a\": 1}'"], "jsonb": ["'1'"], "bytea": ["'\\x31'", "'\\x00ff'"],
    "integer[]": ["'{1,NULL}'"], "text[]": ["'{1,b}'"], "interval": ["'1 day'"], "inet": ["'10.0.0.1'"],
    "money": ["'1.50'"], "time with time zone": ["'10:00+02'"], "interval[]": ["'{\"1 day\"}'"],
}  # fmt: skip

MY_NATIVES: dict[str, list[str]] = {
    "tinyint": ["1"], "tinyint(1)": ["1", "2"], "tinyint unsigned": ["1"], "smallint": ["1"], "mediumint": ["1"],
    "int": ["1"], "int unsigned": ["1"], "bigint": ["1"], "bigint unsigned": ["1", "18446744073709551615"],
    "decimal(10,2)": ["1.00", "1.5"], "decimal(60,0)": ["1"], "float": ["1.5"], "double": ["1.5"],
    "char(3)": ["'1'", "'abc'"], "varchar(40)": ["'1'", f"'{UUID}'", "'ab'"], "text": ["'1'", f"'{UUID}'"],
    "enum('1','b')": ["'1'", "'b'"], "json": ["'1'", "'{\"a\": 1}'"], "binary(2)": ["'1'", "0x00ff"],
    "varbinary(10)": ["'1'", "0x00ff"], "blob": ["'1'"], "bit(8)": ["b'00110001'"],
    "date": ["'2024-01-02'"], "datetime(6)": ["'2024-01-02 10:00:00.5'"],
    "timestamp(6) NULL": ["'2024-01-02 10:00:00.5'"], "time(6)": ["'10:00:00.5'"], "year": ["2024"],
    "uuid": [f"'{UUID}'"], "point": ["POINT(1, 2)"], "inet6": ["'::1'"],
}  # fmt: skip

SQLITE_NATIVES: dict[str, list[str]] = {
    "INTEGER": ["1", "300"], "BOOLEAN": ["1"], "REAL": ["1.5", "0.1"], "NUMERIC(10,2)": ["1", "1.5"],
    "TEXT": ["'1'", f"'{UUID}'", "'2024-01-02'", "'10:00:00'", "'ab'"], "VARCHAR(5)": ["'1'", "'ab'"],
    "BLOB": ["x'31'", "x'00000000000000000000000000000001'"], "DATE": ["'2024-01-02'"],
    "DATETIME": ["'2024-01-02 10:00:00'", "'2024-01-02'"], "TIMESTAMPTZ": ["'2024-01-02 10:00:00+02:00'"],
    "TIME": ["'10:00:00'"], "UUID": [f"'{UUID}'"], "JSON": ["'1'"], "NUMERIC": ["1", "'x'"], "": ["1"],
    "GEOMETRY": ["x'00'"],
}  # fmt: skip

#: narrowing pairs a sample must fit (the warning is no error in disguise); samples cannot
#: cover every narrowing pair of every native type, so these are the ones users rely on
MUST_FIT = {
    ("bigint", "integer"), ("numeric(10,2)", "integer"), ("numeric(10,2)", "decimal(5,2)"), ("numeric", "bigint"),
    ("numeric(60,0)", "decimal(38,9)"), ("text", "uuid"), ("text", "json"), ("text", "decimal(5,2)"),
    ("text", "varchar(2)"), ("text", "bytes"), ("bytea", "text"), ("tinyint(1)", "boolean"), ("int", "tinyint"),
    ("bigint unsigned", "bigint"), ("decimal(10,2)", "integer"), ("varchar(40)", "uuid"), ("varchar(40)", "json"),
    ("INTEGER", "boolean"), ("INTEGER", "tinyint"), ("REAL", "decimal(5,2)"), ("REAL", "real"), ("TEXT", "uuid"),
    ("TEXT", "date"), ("TEXT", "decimal(5,2)"), ("DATETIME", "date"), ("NUMERIC(10,2)", "integer"),
}  # fmt: skip


#: default mappings that check each value (documented in docs/types.md): MySQL's BOOL holds 0 and 1
CHECKED = {("tinyint(1)", "boolean")}


def _name(index: int, target: int) -> str:
    return f"n{index}_t{target}"


def _designs(natives: list[str], prefix: str = "") -> dict[str, dict[str, Any]]:
    """One design per pair; the pairs of one target read that target's copy of the table."""
    designs = {}
    for i, _native in enumerate(natives):
        for j, target in enumerate(TARGETS):
            columns = [{"name": f"c{i}", "type": target}]
            designs[_name(i, j)] = {"source_table": f"{prefix}t{j}", "columns": columns}
    return designs


COPIES = range(len(TARGETS))


def _oracle(root: Path, natives: list[str]) -> list[str]:
    """Relations where validate and the extract disagree, with both verdicts."""
    report = validate(root, cache=False)
    problems: dict[str, list[Any]] = {}
    for p in report.problems:
        if p.relation is None:  # the sample table v has no design: a warning, nothing more
            assert p.code == "upstream-table-undesigned", p.render()
            continue
        problems.setdefault(p.relation, []).append(p)
    outcome = extract(root, jobs=2)
    assert outcome.extract is not None
    wrong = []
    for result in outcome.extract.results:
        # type-unsupported is the load's verdict (decimal(50,10) on DuckDB), checked against
        # the load in tests/validate/test_upstream_policies.py
        errors = [
            p for p in problems.get(result.relation, []) if p.severity == "error" and p.code != "type-unsupported"
        ]
        if bool(errors) != (result.status == "failed"):
            i, j = (int(x[1:]) for x in result.relation.split(".")[1].split("_"))
            said = "; ".join(f"{p.code}: {p.message}" for p in errors) or "no error"
            wrong.append(f"{natives[i]} as {TARGETS[j]}: validate {said} / extract {result.status} {result.error}")
    return wrong


def _verdicts(root: Path) -> dict[str, str]:
    """The drift code validate gives each relation's column (none: the same type)."""
    codes = {}
    for p in validate(root, cache=False).problems:
        if p.code.startswith("upstream-") and p.code not in ("upstream-column-added", "upstream-key-changed"):
            codes[p.relation or ""] = p.code
    return codes


def _samples(source: Source, schema: str, natives: dict[str, list[str]], root: Path) -> list[str]:
    """Pairs whose samples contradict the verdict validate gives them."""
    names = list(natives)
    verdicts = _verdicts(root)
    wrong = []
    for i, native in enumerate(names):
        for j, target in enumerate(TARGETS):
            code = verdicts.get(f"up.{_name(i, j)}")
            if code in ("upstream-column-retyped",):
                continue
            reads = []
            for k in range(len(natives[native])):
                request = ReadRequest(
                    schema, "v", ((f"c{i}", parse_type(target)),), where=f"id = {k + 1} AND c{i} IS NOT NULL"
                )
                try:
                    reads.append(sum(b.num_rows for b in source.read(request)))
                except ExtractError as exc:
                    reads.append(str(exc))
            fitted = [r for r in reads if isinstance(r, int)]
            if code in (None, "upstream-type-fits") and len(fitted) != len(reads) and (native, target) not in CHECKED:
                wrong.append(f"{native} as {target} ({code or 'same'}): {reads}")
            if code == "upstream-type-may-not-fit" and not fitted and (native, target) in MUST_FIT:
                wrong.append(f"{native} as {target} (may not fit): no sample fits: {reads}")
    return wrong


def _sample_rows(natives: dict[str, list[str]]) -> list[list[str]]:
    depth = max(len(v) for v in natives.values())
    return [[str(k + 1)] + [v[k] if k < len(v) else "NULL" for v in natives.values()] for k in range(depth)]


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_validate_errors_exactly_when_the_extract_fails(
    tmp_path: Path, pg: Any, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    natives = list(PG_NATIVES)
    ddl = ", ".join(f"c{i} {n}" for i, n in enumerate(natives))
    pg.execute(f"CREATE TABLE t0 ({ddl}); INSERT INTO t0 DEFAULT VALUES".encode())
    for j in COPIES[1:]:
        pg.execute(f"CREATE TABLE t{j} AS TABLE t0".encode())
    pg.execute(f"CREATE TABLE v (id integer, {ddl})".encode())
    for row in _sample_rows(PG_NATIVES):
        casts = [row[0]] + [f"{value}::{native}" for value, native in zip(row[1:], natives, strict=True)]
        pg.execute(f"INSERT INTO v VALUES ({', '.join(casts)})".encode())
    monkeypatch.setenv("UP_DSN", pg_dsn)
    root = write_project(tmp_path / "p", "postgres", designs=_designs(natives))
    wrong = _oracle(root, natives)
    assert wrong == [], "\n".join(wrong)
    with open_source("postgres", "up", pg_dsn) as source:
        wrong = _samples(source, "public", PG_NATIVES, root)
        assert wrong == [], "\n".join(wrong)


# --------------------------------------------------------------------------- MariaDB


@pytest.mark.mysql
def test_mariadb_validate_errors_exactly_when_the_extract_fails(
    tmp_path: Path, my: Callable[..., Any], my_db: str, my_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    natives = list(MY_NATIVES)
    ddl = ", ".join(f"c{i} {n}" for i, n in enumerate(natives))
    my(f"CREATE TABLE t0 ({ddl})")
    my("INSERT INTO t0 () VALUES ()")
    for j in COPIES[1:]:
        my(f"CREATE TABLE t{j} LIKE t0")
        my(f"INSERT INTO t{j} SELECT * FROM t0")
    my(f"CREATE TABLE v (id int, {ddl})")
    for row in _sample_rows(MY_NATIVES):
        my(f"INSERT INTO v VALUES ({', '.join(row)})")
    monkeypatch.setenv("UP_DSN", my_dsn)
    designs = _designs(natives, f"{my_db}.")
    root = write_project(tmp_path / "p", "mysql", designs=designs, settings=only_schema(my_db))
    wrong = _oracle(root, natives)
    assert wrong == [], "\n".join(wrong)
    with open_source("mysql", "up", my_dsn) as source:
        wrong = _samples(source, my_db, MY_NATIVES, root)
        assert wrong == [], "\n".join(wrong)


# --------------------------------------------------------------------------- SQLite


def test_sqlite_validate_errors_exactly_when_the_extract_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    natives = list(SQLITE_NATIVES)
    ddl = ", ".join(f"c{i} {n}" for i, n in enumerate(natives))
    db = tmp_path / "up.db"
    with sqlite3.connect(db) as con:
        for j in COPIES:  # (CREATE TABLE AS would lose the declared types)
            con.execute(f"CREATE TABLE t{j} ({ddl})")
            con.execute(f"INSERT INTO t{j} DEFAULT VALUES")
        con.execute(f"CREATE TABLE v (id INTEGER, {ddl})")
        for row in _sample_rows(SQLITE_NATIVES):
            con.execute(f"INSERT INTO v VALUES ({', '.join(row)})")
    monkeypatch.setenv("UP_DSN", str(db))
    root = write_project(tmp_path / "p", "sqlite", designs=_designs(natives))
    wrong = _oracle(root, natives)
    assert wrong == [], "\n".join(wrong)
    with open_source("sqlite", "up", str(db)) as source:
        wrong = _samples(source, "main", SQLITE_NATIVES, root)
        assert wrong == [], "\n".join(wrong)
