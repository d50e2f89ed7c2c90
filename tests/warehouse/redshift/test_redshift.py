"""Redshift SQL generation: golden statements, checked by sqlglot's redshift dialect (no cluster needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from conveyor.design.models import TableDesign
from conveyor.errors import ConfigError, UserError
from conveyor.lake.manifest import Manifest, PartFile
from conveyor.warehouse import open_warehouse
from conveyor.warehouse.base import Warehouse
from conveyor.warehouse.postgres.warehouse import PostgresWarehouse
from conveyor.warehouse.redshift.copy import copy_from_manifest_sql, redshift_manifest, unload_sql
from conveyor.warehouse.redshift.ddl import redshift_attributes, redshift_ctas, redshift_ddl
from conveyor.warehouse.redshift.warehouse import RedshiftWarehouse

ROLE = "arn:aws:iam::123456789012:role/ConveyorLoad"


def design(**fields: Any) -> TableDesign:
    return TableDesign.model_validate({"name": "shop.orders", **fields})


ORDERS_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "bigint"},
    {"name": "customer_id", "type": "bigint", "not_null": True},
    {"name": "ordered_at", "type": "timestamptz"},
    {"name": "amount", "type": "decimal(12,2)"},
    {"name": "notes", "type": "text"},
    {"name": "code", "type": "varchar(10)"},
    {"name": "paid", "type": "boolean"},
    {"name": "token", "type": "uuid"},
    {"name": "payload", "type": "json"},
    {"name": "tags", "type": "text[]"},
    {"name": "secret", "type": "text", "skipped": True},
]


def parse(sql: str) -> Any:
    tree = sqlglot.parse_one(sql, read="redshift")
    assert tree is not None
    return tree


def test_ddl_with_key_distribution_compound_sortkey_and_encodings() -> None:
    orders = design(
        columns=ORDERS_COLUMNS,
        constraints={"primary_key": ["id"]},
        attributes={
            "distribution": "key",
            "distkey": "customer_id",
            "sortkey": ["ordered_at", "id"],
            "encode": "az64",
            "encode.notes": "zstd",
            "encode.code": "bytedict",
        },
    )
    sql = redshift_ddl(orders)
    assert sql == (
        'CREATE TABLE "shop"."orders" (\n'
        '    "id" BIGINT NOT NULL ENCODE az64,\n'
        '    "customer_id" BIGINT NOT NULL ENCODE az64,\n'
        '    "ordered_at" TIMESTAMPTZ ENCODE az64,\n'
        '    "amount" DECIMAL(12,2) ENCODE az64,\n'
        '    "notes" VARCHAR(65535) ENCODE zstd,\n'
        '    "code" VARCHAR(40) ENCODE bytedict,\n'
        '    "paid" BOOLEAN,\n'
        '    "token" VARBYTE(16),\n'
        '    "payload" VARCHAR(65535),\n'
        '    "tags" SUPER\n'
        ")\n"
        "DISTSTYLE KEY\n"
        'DISTKEY ("customer_id")\n'
        'COMPOUND SORTKEY ("ordered_at", "id")'
    )
    tree = parse(sql)
    assert isinstance(tree, exp.Create)
    properties = {type(p).__name__: p for p in tree.args["properties"].expressions}
    assert properties["DistStyleProperty"].this.name == "KEY"
    assert properties["DistKeyProperty"].this.name == "customer_id"
    assert [c.name for c in properties["SortKeyProperty"].this] == ["ordered_at", "id"]
    assert properties["SortKeyProperty"].args.get("compound")
    columns = {c.name: c for c in tree.find_all(exp.ColumnDef)}
    assert set(columns) == {c["name"] for c in ORDERS_COLUMNS} - {"secret"}
    encodings = {
        name: constraint.kind.this.name
        for name, column in columns.items()
        for constraint in column.constraints
        if isinstance(constraint.kind, exp.EncodeColumnConstraint)
    }
    assert encodings == {
        "id": "az64",
        "customer_id": "az64",
        "ordered_at": "az64",
        "amount": "az64",
        "notes": "zstd",
        "code": "bytedict",
    }
    assert columns["tags"].args["kind"].this == exp.DataType.Type.SUPER


def test_ddl_even_all_and_plain() -> None:
    plain = design(columns=ORDERS_COLUMNS[:2])
    assert redshift_ddl(plain, name="shop$staging.orders") == (
        'CREATE TABLE "shop$staging"."orders" (\n    "id" BIGINT,\n    "customer_id" BIGINT NOT NULL\n)'
    )
    even = design(columns=ORDERS_COLUMNS[:2], attributes={"distribution": "EVEN", "sortkey": "id"})
    sql = redshift_ddl(even)
    assert sql.endswith('\nDISTSTYLE EVEN\nCOMPOUND SORTKEY ("id")')
    assert isinstance(parse(sql), exp.Create)
    everywhere = design(columns=ORDERS_COLUMNS[:2], attributes={"distribution": "all"})
    assert redshift_ddl(everywhere).endswith("\nDISTSTYLE ALL")
    assert isinstance(parse(redshift_ddl(everywhere)), exp.Create)


def test_interleaved_and_auto_forms() -> None:
    """sqlglot cannot parse these Redshift forms; the rest of the statement must still be valid."""
    interleaved = design(
        columns=ORDERS_COLUMNS[:3],
        attributes={"sortkey": ["customer_id", "ordered_at"], "sortkey_style": "interleaved"},
    )
    sql = redshift_ddl(interleaved)
    assert sql.endswith('\nINTERLEAVED SORTKEY ("customer_id", "ordered_at")')
    assert isinstance(parse(sql.replace("INTERLEAVED SORTKEY", "COMPOUND SORTKEY")), exp.Create)
    auto = design(columns=ORDERS_COLUMNS[:3], attributes={"distribution": "auto", "sortkey": "auto", "encode": "auto"})
    sql = redshift_ddl(auto)
    assert sql.endswith("\nDISTSTYLE AUTO\nSORTKEY AUTO\nENCODE AUTO")
    assert " ENCODE " not in sql.split(")\n")[0]  # no column encodings with ENCODE AUTO
    assert isinstance(parse(sql.replace("\nSORTKEY AUTO\nENCODE AUTO", "")), exp.Create)


def test_ctas_carries_table_attributes() -> None:
    totals = TableDesign.model_validate(
        {"name": "mart.totals", "kind": "ctas", "attributes": {"distkey": "customer_id", "sortkey": ["total"]}}
    )
    sql = redshift_ctas(totals, "SELECT customer_id, sum(amount) AS total FROM shop.orders GROUP BY 1;")
    assert sql == (
        'CREATE TABLE "mart"."totals"\nDISTSTYLE KEY\nDISTKEY ("customer_id")\nCOMPOUND SORTKEY ("total")\n'
        "AS SELECT customer_id, sum(amount) AS total FROM shop.orders GROUP BY 1"
    )
    tree = parse(sql)
    assert isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Select)
    with pytest.raises(ConfigError, match=r'"mart.totals": attribute "encode": CREATE TABLE AS cannot'):
        redshift_ctas(totals.model_copy(update={"attributes": {"encode": "zstd"}}), "SELECT 1 AS x")


def test_manifest_and_copy(tmp_path: Path) -> None:
    files = [
        PartFile("part-00000.parquet", 1000, 52_311, "a" * 64),
        PartFile("part-00001.parquet", 10, 2_048, "b" * 64),
    ]
    manifest = Manifest(
        "20250101T000000Z-abc", "shop", "public.orders", "shop.orders", files, pa.schema([("id", pa.int64())]),
        "SELECT ...", "", "",
    )  # fmt: skip
    document = redshift_manifest(manifest, "s3://lake-bucket/shop/public.orders/20250101T000000Z-abc/")
    assert document == {
        "entries": [
            {
                "url": "s3://lake-bucket/shop/public.orders/20250101T000000Z-abc/part-00000.parquet",
                "mandatory": True,
                "meta": {"content_length": 52_311},
            },
            {
                "url": "s3://lake-bucket/shop/public.orders/20250101T000000Z-abc/part-00001.parquet",
                "mandatory": True,
                "meta": {"content_length": 2_048},
            },
        ]
    }
    json.dumps(document)  # plain JSON, ready to upload

    sql = copy_from_manifest_sql("shop$staging.orders", "s3://lake-bucket/manifests/orders.manifest", ROLE)
    assert sql == (
        'COPY "shop$staging"."orders" FROM \'s3://lake-bucket/manifests/orders.manifest\' '
        f"IAM_ROLE '{ROLE}' FORMAT AS PARQUET STATUPDATE TRUE MANIFEST"
    )
    tree = parse(sql)
    assert isinstance(tree, exp.Copy)
    assert tree.this.db == "shop$staging" and tree.this.name == "orders"
    assert tree.args["files"][0].this == "s3://lake-bucket/manifests/orders.manifest"
    assert tree.args["credentials"].args["iam_role"].this == ROLE
    assert {p.this.name for p in tree.args["params"]} == {"FORMAT", "STATUPDATE", "MANIFEST"}

    nested = copy_from_manifest_sql("shop.orders", "s3://b/m", ROLE, region="eu-west-1", serialize_to_json=True)
    assert nested.endswith("FORMAT AS PARQUET STATUPDATE TRUE SERIALIZETOJSON MANIFEST REGION 'eu-west-1'")
    assert isinstance(parse(nested), exp.Copy)


def test_unload() -> None:
    sql = unload_sql("SELECT * FROM mart.report WHERE name <> 'it''s';", "s3://out/report/part_", ROLE)
    assert sql == (
        "UNLOAD ('SELECT * FROM mart.report WHERE name <> ''it''''s''') TO 's3://out/report/part_' "
        f"IAM_ROLE '{ROLE}' FORMAT AS PARQUET MANIFEST"
    )
    # sqlglot keeps UNLOAD as a command; the query inside must parse as Redshift SQL
    tree = parse(sql)
    assert isinstance(tree, exp.Command) and tree.this.upper() == "UNLOAD"
    inner = sql[sql.index("('") + 2 : sql.index("') TO")].replace("''", "'")
    query = parse(inner)
    assert isinstance(query, exp.Select) and query.find(exp.Literal).this == "it's"  # type: ignore[union-attr]
    assert unload_sql("SELECT 1", "s3://out/x", ROLE, max_file_size_mb=256).endswith(" MAXFILESIZE 256 MB")


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            {"distribution": "round_robin"},
            r'attribute "distribution": "round_robin" is not one of even, key, all, auto',
        ),
        ({"distribution": "key"}, r'attribute "distribution": distribution: key needs a distkey'),
        ({"distribution": "even", "distkey": "id"}, r'attribute "distkey": a distribution key needs distribution: key'),
        ({"distkey": "customer"}, r'attribute "distkey": "customer" is not a column.*Did you mean "customer_id"'),
        ({"distkey": "tags"}, r'attribute "distkey": column "tags" is SUPER'),
        ({"sortkey": ["id", "id"]}, r'attribute "sortkey": a column appears twice'),
        ({"sortkey": ["nope"]}, r'attribute "sortkey": "nope" is not a column'),
        ({"sortkey_style": "interleaved"}, r'attribute "sortkey_style": it needs a sortkey'),
        (
            {"sortkey": ["id"], "sortkey_style": "zigzag"},
            r'attribute "sortkey_style": "zigzag" is not one of compound, interleaved',
        ),
        ({"encode": "zstdd"}, r'attribute "encode": "zstdd" is not a Redshift encoding.*Did you mean "zstd"'),
        ({"encode.notes": "az64"}, r'attribute "encode.notes": az64 cannot compress a VARCHAR\(65535\) column'),
        ({"encode.nope": "zstd"}, r'attribute "encode.nope": "nope" is not a column'),
        ({"encode": "auto", "encode.id": "raw"}, r'attribute "encode": encode: auto leaves every column to Redshift'),
        ({"dist_key": "id"}, r'attribute "dist_key": unknown Redshift attribute.*Did you mean "distkey"'),
        ({"distkey": ["id"]}, r'attribute "distkey": expected one word'),
    ],
)
def test_attribute_errors_name_the_design_and_key(attributes: dict[str, Any], message: str) -> None:
    bad = design(columns=ORDERS_COLUMNS, attributes=attributes)
    with pytest.raises(ConfigError, match=r'design "shop.orders": ' + message):
        redshift_attributes(bad)


def test_interleaved_sortkeys_have_at_most_eight_columns() -> None:
    columns = [{"name": f"c{i}", "type": "integer"} for i in range(9)]
    bad = design(columns=columns, attributes={"sortkey": [c["name"] for c in columns], "sortkey_style": "interleaved"})
    with pytest.raises(ConfigError, match="at most 8 columns, not 9"):
        redshift_ddl(bad)


def test_types_redshift_lacks_are_errors() -> None:
    with pytest.raises(ConfigError, match=r'column "big" is decimal\(50,2\).*at most 38 digits'):
        redshift_ddl(design(columns=[{"name": "big", "type": "decimal(50,2)"}]))


def test_bad_urls_and_roles() -> None:
    with pytest.raises(UserError, match="s3://bucket"):
        copy_from_manifest_sql("shop.orders", "https://example.com/m", ROLE)
    with pytest.raises(UserError, match="not an IAM role ARN"):
        copy_from_manifest_sql("shop.orders", "s3://b/m", "my-role")
    chained = f"{ROLE},arn:aws:iam::210987654321:role/Other"
    assert f"IAM_ROLE '{chained}'" in unload_sql("SELECT 1", "s3://b/x", chained)


def test_the_warehouse_generates_sql_but_does_not_load() -> None:
    warehouse = open_warehouse("redshift", "rs", "postgresql://etl:s3cr3t-pw@cluster.example.com:5439/dev")
    assert isinstance(warehouse, RedshiftWarehouse)
    assert (warehouse.ENGINE, warehouse.DIALECT, warehouse.PUBLISH) == ("redshift", "redshift", "schema_swap")
    assert warehouse.describe() == "Redshift etl@cluster.example.com:5439/dev"
    assert warehouse.create_table_sql(design(columns=ORDERS_COLUMNS[:1])).startswith('CREATE TABLE "shop"."orders"')
    with pytest.raises(UserError, match=r'load is not supported on the Redshift environment "rs" yet: .* S3'):
        warehouse.begin(["shop"], run_id="r")


def test_every_public_method_of_the_postgres_engine_is_decided_for_redshift() -> None:
    """Redshift overrides each one (DDL, types) or refuses it; none is inherited from PostgreSQL silently."""
    public = {
        name
        for name, member in vars(PostgresWarehouse).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, (classmethod, property)))
    }
    public |= {name for name in vars(Warehouse) if not name.startswith("_") and callable(getattr(Warehouse, name))}
    inherited_on_purpose = {"require"}  # reads OPERATIONS, which Redshift sets to nothing
    undecided = {name for name in public - inherited_on_purpose if name not in vars(RedshiftWarehouse)}
    assert undecided == set()
    warehouse = open_warehouse("redshift", "rs", "postgresql://etl@127.0.0.1:1/dev")
    refused = {
        "connect": lambda: warehouse.connect(),
        "transaction": lambda: warehouse.transaction(run_id="r", atomic=True),
        "relations": lambda: warehouse.relations(),
        "read_relation": lambda: warehouse.read_relation("shop.orders").__enter__(),
        "query": lambda: warehouse.query("SELECT 1", 1),
    }
    for name, call in refused.items():
        with pytest.raises(UserError, match='not supported on the Redshift environment "rs"'):
            call()
            pytest.fail(f"{name} was not refused")
    with pytest.raises(UserError, match="upgrade is not supported"):
        warehouse.transaction(run_id="r", atomic=False)
