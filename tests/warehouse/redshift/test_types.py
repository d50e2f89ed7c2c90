"""Redshift spells every design type its own way, through the warehouse class; never PostgreSQL's names.

No cluster is needed: the spellings are compared with the table in docs/warehouses.md and
every generated CREATE TABLE is parsed with sqlglot's redshift dialect.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.design.models import TableDesign
from conveyor.design.types import TYPE_NAMES, SqlType, parse_type
from conveyor.errors import ConfigError
from conveyor.warehouse import ddl, open_warehouse, render_type
from conveyor.warehouse.duckdb.warehouse import DuckDBWarehouse
from conveyor.warehouse.postgres.warehouse import PostgresWarehouse
from conveyor.warehouse.redshift.warehouse import RedshiftWarehouse

# every type of the vocabulary without parameters, as Redshift spells it (docs/warehouses.md)
SPELLING = {
    "boolean": "BOOLEAN",
    "tinyint": "SMALLINT",
    "utinyint": "SMALLINT",
    "smallint": "SMALLINT",
    "usmallint": "INTEGER",
    "integer": "INTEGER",
    "uinteger": "BIGINT",
    "bigint": "BIGINT",
    "ubigint": "DECIMAL(20,0)",
    "real": "REAL",
    "double": "DOUBLE PRECISION",
    "text": "VARCHAR(65535)",
    "json": "VARCHAR(65535)",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "uuid": "VARBYTE(16)",
    "bytes": "VARBYTE(1024000)",
    "varchar": "VARCHAR(65535)",
    "char": "VARCHAR(65535)",
}
# names that are PostgreSQL's (or DuckDB's) and mean something else, or nothing, on Redshift
FOREIGN = {"TEXT", "JSONB", "JSON", "BYTEA", "BLOB", "UUID", "NUMERIC", "DOUBLE", "TINYINT", "[]"}


def spelled(text: str) -> str:
    return RedshiftWarehouse.render_type(parse_type(text), column="c", design="s.t")


def test_every_type_name_of_the_vocabulary_has_its_redshift_spelling() -> None:
    for name in TYPE_NAMES:
        if name in ("decimal", "numeric"):
            continue  # needs a precision: below
        canonical = parse_type(name).name
        assert spelled(name) == SPELLING[canonical], name


def _type_text() -> st.SearchStrategy[str]:
    simple = st.sampled_from([n for n in TYPE_NAMES if n not in ("decimal", "numeric")])
    decimal = st.integers(1, 76).flatmap(lambda p: st.integers(0, p).map(lambda s: f"decimal({p},{s})"))
    sized = st.tuples(st.sampled_from(["varchar", "char"]), st.integers(1, 100_000)).map(lambda t: f"{t[0]}({t[1]})")
    return st.tuples(st.one_of(simple, decimal, sized), st.booleans()).map(lambda t: t[0] + ("[]" if t[1] else ""))


@settings(max_examples=300, deadline=None)
@given(_type_text())
def test_any_design_type_is_redshift_ddl_or_a_config_error(text: str) -> None:
    sql_type = parse_type(text)
    too_wide = sql_type.name == "decimal" and (sql_type.precision or 0) > 38  # arrays of them too
    if too_wide:
        with pytest.raises(
            ConfigError, match=r'column "c" is decimal\(\d+,\d+\) but Redshift decimals have at most 38'
        ):
            spelled(text)
        return
    result = spelled(text)
    if sql_type.is_array:
        assert result == "SUPER"
    elif sql_type.name == "decimal":
        assert result == f"DECIMAL({sql_type.precision},{sql_type.scale})"
    elif sql_type.name in ("varchar", "char"):
        assert result == f"VARCHAR({min(4 * (sql_type.precision or 65535), 65535)})"  # bytes, not characters
    else:
        assert result == SPELLING[sql_type.name]
    assert result.split("(")[0] not in FOREIGN
    tree = sqlglot.parse_one(f'CREATE TABLE "s"."t" ("c" {result} NOT NULL)', read="redshift")
    assert tree is not None


def _design(columns: list[dict[str, Any]], **fields: Any) -> TableDesign:
    return TableDesign.model_validate({"name": "shop.things", "columns": columns, **fields})


def test_table_ddl_of_every_type_is_redshifts_with_informational_keys() -> None:
    columns = [{"name": f"c_{name}", "type": name} for name in sorted(SPELLING)]
    columns += [{"name": "c_dec", "type": "decimal(38,10)"}, {"name": "c_arr", "type": "integer[]"}]
    design = _design(columns, constraints={"primary_key": ["c_bigint"], "unique": [["c_uuid", "c_date"]]})
    warehouse = open_warehouse("redshift", "rs", "postgresql://etl@cluster.example.com:5439/dev")
    create, *comments = warehouse.table_ddl(design)
    for name, expected in SPELLING.items():
        assert f'"c_{name}" {expected}' in create
    assert '"c_dec" DECIMAL(38,10)' in create and '"c_arr" SUPER' in create
    assert '"c_bigint" BIGINT NOT NULL' in create
    assert 'PRIMARY KEY ("c_bigint")' in create and 'UNIQUE ("c_uuid", "c_date")' in create
    assert comments == []
    assert not {word for word in FOREIGN if f" {word}," in create or f" {word}\n" in create}
    assert sqlglot.parse_one(create, read="redshift") is not None
    # the dialect-name entry points go through the class too
    assert ddl.create_table(design, "redshift", keys=True) == create
    assert render_type(parse_type("text[]"), "redshift") == "SUPER"


def test_other_warehouses_keep_their_spelling_and_nothing_falls_back_to_postgres() -> None:
    for text in ["text", "json", "bytes", "ubigint", "uuid", "decimal(12,2)", "integer[]", "varchar(10)"]:
        sql_type = parse_type(text)
        assert PostgresWarehouse.render_type(sql_type) == sql_type.render("postgres")
        assert DuckDBWarehouse.render_type(sql_type) == sql_type.render("duckdb")
    with pytest.raises(ValueError, match='no spelling for dialect "redshift"'):
        SqlType("text").render("redshift")


def test_a_decimal_wider_than_redshift_is_refused_in_show_ddl() -> None:
    warehouse = open_warehouse("redshift", "rs", "postgresql://etl@cluster.example.com:5439/dev")
    with pytest.raises(ConfigError, match=r'design "shop.things": column "big" is decimal\(50,2\)'):
        warehouse.table_ddl(_design([{"name": "big", "type": "decimal(50,2)"}]))
