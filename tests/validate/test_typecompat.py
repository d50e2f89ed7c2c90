"""Type compatibility: warehouse spellings read into design types, and the four verdicts."""

from __future__ import annotations

import pytest

from conveyor.design.types import SqlType, parse_type
from conveyor.validate.typecompat import compare, native_type


@pytest.mark.parametrize(
    ("text", "dialect", "expected"),
    [
        ("DECIMAL(18,2)", "duckdb", "decimal(18,2)"),
        ("BIGINT", "duckdb", "bigint"),
        ("VARCHAR", "duckdb", "text"),
        ("FLOAT", "duckdb", "real"),
        ("DOUBLE", "duckdb", "double"),
        ("TIMESTAMP WITH TIME ZONE", "duckdb", "timestamptz"),
        ("TIMESTAMP_NS", "duckdb", "timestamp"),
        ("INTEGER[]", "duckdb", "integer[]"),
        ("BLOB", "duckdb", "bytes"),
        ("HUGEINT", "duckdb", "hugeint"),
        ("int8", "postgres", "bigint"),
        ("float8", "postgres", "double"),
        ("numeric(18,2)", "postgres", "decimal(18,2)"),
        ("numeric", "postgres", "decimal"),
        ("varchar(5)", "postgres", "varchar(5)"),
        ("bpchar(3)", "postgres", "char(3)"),
        ("timestamptz", "postgres", "timestamptz"),
        ("int4[]", "postgres", "integer[]"),
        ("jsonb", "postgres", "json"),
        ("character varying(20)", "postgres", "varchar(20)"),
    ],
)
def test_native_types(text: str, dialect: str, expected: str) -> None:
    assert str(native_type(text, dialect)) == expected


@pytest.mark.parametrize("text", ["STRUCT(a INTEGER)", "MAP(VARCHAR, INTEGER)", "geometry", ""])
def test_types_without_a_design_equivalent(text: str) -> None:
    assert native_type(text, "duckdb") is None


@pytest.mark.parametrize(
    ("given", "wanted", "verdict"),
    [
        ("decimal(18,2)", "decimal(18,2)", "same"),
        ("integer", "bigint", "widening"),
        ("bigint", "integer", "narrowing"),
        ("integer", "text", "mismatch"),
        ("text", "integer", "mismatch"),
        ("smallint", "decimal(5,0)", "widening"),
        ("integer", "decimal(9,0)", "narrowing"),
        ("decimal(10,2)", "decimal(12,2)", "widening"),
        ("decimal(10,2)", "decimal(12,4)", "widening"),
        ("decimal(12,4)", "decimal(12,2)", "narrowing"),
        ("decimal(9,0)", "integer", "widening"),
        ("double", "decimal(18,2)", "narrowing"),
        ("decimal(18,2)", "double", "narrowing"),
        ("real", "double", "widening"),
        ("integer", "double", "widening"),
        ("bigint", "double", "narrowing"),
        ("utinyint", "smallint", "widening"),
        ("usmallint", "smallint", "narrowing"),
        ("varchar(20)", "text", "widening"),
        ("text", "varchar(20)", "narrowing"),
        ("varchar(20)", "varchar(10)", "narrowing"),
        ("date", "timestamp", "widening"),
        ("timestamp", "timestamptz", "narrowing"),
        ("timestamp", "date", "narrowing"),
        ("text", "json", "narrowing"),
        ("boolean", "integer", "mismatch"),
        ("uuid", "text", "mismatch"),
        ("integer[]", "bigint[]", "widening"),
        ("integer[]", "integer", "mismatch"),
        ("time", "timestamp", "mismatch"),
    ],
)
def test_verdicts(given: str, wanted: str, verdict: str) -> None:
    assert compare(parse_type(given), parse_type(wanted)) == verdict


def test_unconstrained_numeric_fits_any_decimal() -> None:
    assert compare(SqlType("decimal"), parse_type("decimal(38,2)")) == "widening"
    assert compare(SqlType("hugeint"), parse_type("bigint")) == "narrowing"
    assert compare(SqlType("hugeint"), parse_type("decimal(38,0)")) == "narrowing"
