"""``import-dbt`` on the dbt project fixture: the result validates, builds on DuckDB from a SQLite
upstream, and the report lists exactly what did not convert, with file:line."""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import CUSTOMERS, ORDERS, PRODUCTS, make_upstream, write_files
from testkit.cli import CliResult

from conveyor import api
from conveyor.design.models import TableDesign
from conveyor.errors import UserError

DBT_SHOP = Path(__file__).parents[1] / "fixtures" / "dbt_shop"

SETTINGS = """\
name: imported
sources:
  shop:
    type: sqlite
    dsn: upstream.db
lake:
  path: lake
environments:
  dev:
    type: duckdb
    dsn: warehouse.duckdb
"""

#: everything in the fixture that does not convert: (where, what)
NOT_CONVERTED = [
    ("models/marts/active_customers.sql:2", "model active_customers"),
    ("models/marts/active_customers.sql:4", "model active_customers"),
    ("models/marts/active_report.sql:2", "model active_report"),
    ("models/staging/schema.yml:8", "model stg_customers.customer_id"),
    ("models/staging/sources.yml:42", "test dbt_utils.expression_is_true of source shop.orders.amount"),
]


def _target(tmp_path: Path) -> Path:
    root = tmp_path / "conveyor"
    write_files(root, {"conveyor.yaml": SETTINGS})
    make_upstream(root / "upstream.db")
    return root


def test_the_fixture_converts_validates_and_builds_the_marts(tmp_path: Path) -> None:
    root = _target(tmp_path)
    report = api.import_dbt(DBT_SHOP, root, "analytics")

    assert [(i.where, i.what) for i in report.not_converted] == NOT_CONVERTED
    reasons = [i.why for i in report.not_converted]
    assert reasons[0] == "Jinja statement {% if var('only_active', true) %}"
    assert reasons[2] == "ref('active_customers'): model active_customers is not converted"
    assert {m.model: (m.relation, m.kind) for m in report.models} == {
        "stg_customers": ("staging.stg_customers", "view"),
        "stg_orders": ("staging.stg_orders", "view"),
        "stg_products": ("staging.stg_products", "view"),
        "customer_totals": ("marts.customer_totals", "ctas"),
        "order_facts": ("marts.order_facts", "ctas"),
        "orders_by_size": ("marts.orders_by_size", "ctas"),
    }
    assert report.sources == ["shop.customers", "shop.orders", "shop.products"]
    assert report.assertions == ["tests/assert_total_not_negative.sql"]
    assert report.tests == 19
    assert report.conveyor_yaml is None  # the source shop is configured already
    assert not (root / "schemas/marts/active_customers.yaml").exists()

    problems = api.validate(root, sources=False)
    assert [p for p in problems.problems if p.severity == "error"] == []

    outcome = api.run(api.open_project(root))
    assert outcome.ok, outcome
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        totals = con.execute("SELECT * FROM marts.customer_totals ORDER BY customer_id").fetchall()
        by_size = con.execute("SELECT * FROM marts.orders_by_size ORDER BY size").fetchall()
        facts = con.execute("SELECT order_id, customer_name FROM marts.order_facts ORDER BY 1").fetchall()
        products = con.execute("SELECT * FROM staging.stg_products ORDER BY 1").fetchall()
    assert totals == _expected_totals()
    assert by_size == _expected_by_size()
    names = {c[0]: c[1] for c in CUSTOMERS}
    assert facts == [(o[0], names[o[1]]) for o in ORDERS]
    assert products == [(p[0], p[1]) for p in PRODUCTS if p[2]]


def _expected_totals() -> list[tuple[object, ...]]:
    amounts: dict[int, list[Decimal]] = defaultdict(list)
    for _, customer, amount, _ in ORDERS:
        amounts[customer].append(Decimal(str(amount)).quantize(Decimal("0.01")))
    return [(c[0], c[1], len(amounts[c[0]]), sum(amounts[c[0]], Decimal("0.00"))) for c in CUSTOMERS]


def _expected_by_size() -> list[tuple[object, ...]]:
    groups: dict[str, list[Decimal]] = defaultdict(list)
    for order in ORDERS:
        amount = Decimal(str(order[2])).quantize(Decimal("0.01"))
        groups["large" if amount >= 50 else "small"].append(amount)
    return [(size, len(groups[size]), sum(groups[size])) for size in sorted(groups)]


def _design(root: Path, relative: str) -> TableDesign:
    return TableDesign.model_validate(yaml.safe_load((root / "schemas" / relative).read_text()))


def test_tests_carry_over_with_severity_and_where(tmp_path: Path) -> None:
    root = _target(tmp_path)
    api.import_dbt(DBT_SHOP, root)
    totals = _design(root, "marts/customer_totals.yaml")
    assert totals.partial_columns and totals.description == "Order totals per customer."
    columns = {c.name: c for c in totals.columns}
    assert [t.kind for t in columns["customer_id"].tests] == ["unique", "not_null"]
    (not_null,) = columns["total"].tests
    assert (not_null.args.severity, not_null.args.where) == ("warn", "order_count > 0")
    (accepted,) = columns["order_count"].tests
    assert accepted.accepted_values is not None and accepted.accepted_values.values == [0, 1, 2]

    facts = _design(root, "marts/order_facts.yaml")
    assert facts.tags == ["finance"]
    (unique,) = facts.tests
    assert unique.unique is not None and unique.unique.expression == "order_id || '-' || customer_id"
    relationship = {c.name: c for c in facts.columns}["customer_id"].tests[0].relationships
    assert relationship is not None
    assert (relationship.to, relationship.field, relationship.severity) == (
        "marts.customer_totals",
        "customer_id",
        "warn",
    )

    orders = _design(root, "staging/stg_orders.yaml")
    size = {c.name: c for c in orders.columns}["size"].tests[0]
    assert size.accepted_values is not None and size.accepted_values.values == ["small", "large"]
    assert size.args.severity == "warn"
    to_customers = {c.name: c for c in orders.columns}["customer_id"].tests[0].relationships
    assert to_customers is not None and to_customers.where == "customer_id is not null"

    source = _design(root, "shop/orders.yaml")
    assert source.kind == "source" and source.source_table == "main.orders"
    assert source.freshness is not None and source.freshness.warn_after == "12 hours"
    assert (root / "tests/assert_total_not_negative.sql").read_text().splitlines()[1:] == [
        "-- a customer's total is never negative",
        "select customer_id, total",
        "from marts.customer_totals",
        "where total < 0",
    ]


def test_into_an_empty_folder_writes_a_conveyor_yaml_that_validates(tmp_path: Path) -> None:
    report = api.import_dbt(DBT_SHOP, tmp_path / "new", "analytics")
    assert "conveyor.yaml" in report.files
    text = (tmp_path / "new" / "conveyor.yaml").read_text()
    assert "shop:" in text and "${SHOP_DSN}" in text
    problems = api.validate(tmp_path / "new", sources=False)
    assert [p for p in problems.problems if p.severity == "error"] == []


def test_a_conveyor_yaml_without_the_source_gets_a_snippet(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write_files(root, {"conveyor.yaml": SETTINGS.replace("  shop:", "  other:")})
    report = api.import_dbt(DBT_SHOP, root, dry_run=True)
    assert report.conveyor_yaml is not None and report.conveyor_yaml.startswith("sources:\n  shop:\n")
    assert sorted(p.name for p in root.iterdir()) == ["conveyor.yaml"]  # a dry run writes nothing


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    root = _target(tmp_path)
    api.import_dbt(DBT_SHOP, root)
    design = root / "schemas/marts/customer_totals.yaml"
    design.write_text(design.read_text() + "# hand edit\n")
    with pytest.raises(UserError, match="would overwrite 16 file"):
        api.import_dbt(DBT_SHOP, root)
    assert design.read_text().endswith("# hand edit\n")
    api.import_dbt(DBT_SHOP, root, force=True)
    assert not design.read_text().endswith("# hand edit\n")


def test_cli_exit_codes_and_report(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    root = _target(tmp_path)
    result = cli("import-dbt", str(DBT_SHOP), "--into", str(root), "--format", "json")
    assert result.code == 1, result.output
    data = result.json()
    assert [(i["where"], i["what"]) for i in data["not_converted"]] == NOT_CONVERTED
    assert "Traceback" not in result.output

    clean = tmp_path / "clean"
    shutil.copytree(DBT_SHOP, clean)
    for relative in ("models/marts/active_customers.sql", "models/marts/active_report.sql"):
        (clean / relative).unlink()
    (clean / "models/staging/schema.yml").write_text(
        (clean / "models/staging/schema.yml").read_text().replace("\"{{ doc('customer_id') }}\"", "The key.")
    )
    sources = clean / "models/staging/sources.yml"
    sources.write_text(
        sources.read_text()
        .replace("              - dbt_utils.expression_is_true:\n", "")
        .replace('                  expression: ">= 0"\n', "")
        .replace("            tests:\n          - name: ordered_at", "          - name: ordered_at")
    )
    result = cli("import-dbt", str(clean), "--into", str(tmp_path / "out"))
    assert result.code == 0, result.output
    assert "Not converted" not in result.stdout and "Wrote 17 file(s)" in result.stdout


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "is not a dbt project: it has no dbt_project.yml"),
        ({"dbt_project.yml": "name: x\nmodels: [\n"}, "dbt_project.yml:3"),
        (
            {"dbt_project.yml": "name: x\n", "models/a.yml": "version: 2\nmodels:\n  - name: a\n    columns: [\n"},
            "models/a.yml:",
        ),
        ({"dbt_project.yml": "version: 2\n"}, "dbt_project.yml has no name"),
    ],
)
def test_bad_input_exits_2_with_file_and_line(
    tmp_path: Path, cli: Callable[..., CliResult], files: dict[str, str], expected: str
) -> None:
    project = tmp_path / "dbt"
    project.mkdir()
    write_files(project, files)
    result = cli("import-dbt", str(project), "--into", str(tmp_path / "out"))
    assert result.code == 2, result.output
    assert result.stderr.startswith("Error: ") and expected in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


EDGES = {
    "dbt_project.yml": """\
        name: edges
        models:
          edges:
            +tags: [all]
            hooked:
              +post-hook: "grant select on {{ this }} to reporter"
            plain:
              +tags: [plain]
              renamed:
                +alias: new_name
        seeds:
          +quote_columns: false
    """,
    "models/plain/renamed.sql": "select 1 as id\n",
    "models/plain/eph.sql": (
        "{{ config(materialized='ephemeral', schema='work') }}\nselect id from {{ ref('renamed') }}\n"
    ),
    "models/plain/off.sql": "{{ config(enabled=false) }}\nselect 1 as id\n",
    "models/plain/uses_off.sql": "select * from {{ ref('off') }}\n",
    "models/plain/versioned.sql": "select * from {{ ref('renamed', v=2) }}\n",
    "models/plain/package.sql": "select * from {{ ref('dbt_utils', 'x') }}\n",
    "models/plain/snap.sql": "{{ config(materialized='snapshot') }}\nselect 1 as id\n",
    "models/plain/clash.sql": "{{ config(schema='raw') }}\nselect 1 as id\n",
    "models/hooked/h.sql": "select 1 as id\n",
    "models/props.yml": """\
        version: 2
        sources:
          - name: raw
            tables:
              - name: t
        models:
          - name: ghost
        exposures:
          - name: dashboard
    """,
    "tests/generic/positive.sql": "{% test positive(model, column_name) %}\nselect 1\n{% endtest %}\n",
    "tests/uses_var.sql": "select * from {{ ref('renamed') }}\nwhere id > {{ var('limit') }}\n",
    "tests/warned.sql": "{{ config(severity='warn') }}\nselect * from {{ ref('renamed') }} where id < 0\n",
    "tests/stored.sql": "{{ config(store_failures_as='table') }}\nselect * from {{ ref('renamed') }} where id < 0\n",
    "snapshots/history.sql": "{% snapshot history %}\nselect 1\n{% endsnapshot %}\n",
}


def test_config_materializations_and_names_in_the_report(tmp_path: Path) -> None:
    write_files(tmp_path / "edges", EDGES)
    report = api.import_dbt(tmp_path / "edges", tmp_path / "out", dry_run=True)
    assert [(i.where, i.what, i.why) for i in report.not_converted] == [
        ("dbt_project.yml:6", "model h", "config post-hook is not converted"),
        ("dbt_project.yml:11", "seeds:", "project-level hooks and configs are not converted"),
        (
            "models/plain/clash.sql:1",
            "model clash",
            'its schema "raw" is a source\'s: Conveyor keeps source schemas apart',
        ),
        (
            "models/plain/package.sql:1",
            "model package",
            "ref('dbt_utils', 'x'): models of package dbt_utils are not imported",
        ),
        ("models/plain/snap.sql:1", "model snap", "materialized: snapshot is not converted"),
        ("models/plain/uses_off.sql:1", "model uses_off", "ref('off'): model off is not converted"),
        (
            "models/plain/versioned.sql:1",
            "model versioned",
            "ref('renamed') with keyword or non-string arguments (versions) is not converted",
        ),
        ("models/props.yml:7", "properties of ghost", "there is no model of that name"),
        ("models/props.yml:8", "exposures:", "dbt exposures are not converted"),
        ("snapshots/history.sql:1", "snapshot history", "snapshots (history tables) are not converted"),
        (
            "tests/generic/positive.sql:1",
            "generic test definition in tests/generic/positive.sql",
            "custom generic tests are not converted",
        ),
        ("tests/stored.sql:1", "singular test stored", "config store_failures_as of a singular test is not converted"),
        ("tests/uses_var.sql:2", "singular test uses_var", "Jinja expression {{ var('limit') }}"),
    ]
    assert report.assertions == ["tests/warned.sql"]
    assert "tests/warned.yaml" in report.files
    assert {m.model: (m.relation, m.kind) for m in report.models} == {
        "renamed": ("edges.new_name", "view"),
        "eph": ("work.eph", "view"),
    }
    assert [(i.where, i.why) for i in report.notes] == [
        ("models/plain/eph.sql:1", "ephemeral: becomes a view (dbt inlines it as a CTE; the rows are the same)"),
        ("models/plain/off.sql:1", "disabled (enabled: false): left out"),
    ]
    assert report.next_steps[1] == "conveyor bootstrap --update raw"
    assert not (tmp_path / "out").exists()


def test_the_written_tags_accumulate_down_the_folders(tmp_path: Path) -> None:
    write_files(tmp_path / "edges", EDGES)
    api.import_dbt(tmp_path / "edges", tmp_path / "out")
    assert _design(tmp_path / "out", "edges/new_name.yaml").tags == ["all", "plain"]
    assert (tmp_path / "out/schemas/work/eph.sql").read_text().endswith("select id from edges.new_name\n")
    assert yaml.safe_load((tmp_path / "out/tests/warned.yaml").read_text()) == {"severity": "warn"}
    assert (tmp_path / "out/tests/warned.sql").read_text().endswith("\nselect * from edges.new_name where id < 0\n")


def test_sources_without_data_types_take_them_from_bootstrap(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    dbt = tmp_path / "dbt"
    shutil.copytree(DBT_SHOP, dbt)
    sources = dbt / "models/staging/sources.yml"
    sources.write_text("".join(line for line in sources.read_text().splitlines(True) if "data_type" not in line))
    root = _target(tmp_path)
    report = api.import_dbt(dbt, root)
    assert "conveyor bootstrap --update shop" in report.next_steps
    assert [p.code for p in api.validate(root, sources=False).problems if p.severity == "error"][:1] == ["missing-type"]
    assert cli("bootstrap", "--update", "shop", "-p", str(root)).code == 0
    assert [p for p in api.validate(root, sources=False).problems if p.severity == "error"] == []
    orders = _design(root, "shop/orders.yaml")
    assert orders.columns[1].tests[0].relationships is not None  # the tests survive the merge


def test_converted_tests_stop_bad_data_from_being_published(tmp_path: Path) -> None:
    """The tests carried over from dbt run before publishing: an order whose customer is gone fails them."""
    import sqlite3

    root = _target(tmp_path)
    api.import_dbt(DBT_SHOP, root, "analytics")
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("DELETE FROM customers WHERE id = 3")
    outcome = api.run(api.open_project(root))
    assert outcome.build is not None and not outcome.build.published
    failed = [t for t in outcome.test_outcomes if t.status == "failed"]
    assert failed and all(t.test.kind == "relationships" for t in failed), [t.describe() for t in failed]
    assert {t.test.column for t in failed} == {"customer_id"}
    assert not (root / "warehouse.duckdb").exists()  # nothing was ever published
