"""The cases of the bad-input corpus (``test_bad_inputs.py``): one row per way to break a project.

The base project is tests/cases/_base (a SQLite upstream ``shop`` with customers and orders,
a ``mart`` schema of two CTAS and a view, a DuckDB environment ``dev`` at
warehouse/dev.duckdb), primed by one ``conveyor run``. ``base="pg"`` cases use the same
project with a PostgreSQL warehouse ``pg`` instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from .badinput import CASES as CASES_DIR
from .badinput import Case

PG_DSN_MARK = "@PG_DSN@"
"""Replaced by the DSN of the throw-away PostgreSQL warehouse database."""

SETTINGS = (CASES_DIR / "_base" / "conveyor.yaml").read_text(encoding="utf-8")
ORDERS = (CASES_DIR / "_base" / "schemas" / "shop" / "orders.yaml").read_text(encoding="utf-8")
CUSTOMERS = (CASES_DIR / "_base" / "schemas" / "shop" / "customers.yaml").read_text(encoding="utf-8")
ORDER_DAYS = (CASES_DIR / "_base" / "schemas" / "mart" / "order_days.yaml").read_text(encoding="utf-8")

RUN, EXTRACT, LOAD, UPDATE = ("run",), ("extract",), ("load",), ("update", "shop.orders")
COMMANDS = (RUN, EXTRACT, LOAD)


def settings(old: str, new: str) -> dict[str, str]:
    """conveyor.yaml with one piece replaced."""
    assert old in SETTINGS, old
    return {"conveyor.yaml": SETTINGS.replace(old, new, 1)}


def more_settings(text: str) -> dict[str, str]:
    """conveyor.yaml with top-level keys added."""
    return {"conveyor.yaml": SETTINGS + text}


def orders(old: str, new: str) -> dict[str, str]:
    assert old in ORDERS, old
    return {"schemas/shop/orders.yaml": ORDERS.replace(old, new, 1)}


def environment(dsn: str, kind: str = "duckdb") -> dict[str, str]:
    return settings(
        "  dev:\n    type: duckdb\n    dsn: warehouse/dev.duckdb\n", f"  dev:\n    type: {kind}\n    dsn: {dsn}\n"
    )


def source(dsn: str, kind: str = "sqlite") -> dict[str, str]:
    return settings("    type: sqlite\n    dsn: upstream.db\n", f"    type: {kind}\n    dsn: {dsn}\n")


def _mkdir(relative: str) -> object:
    def setup(root: Path) -> None:
        path = root / relative
        if path.is_file():
            path.unlink()
        path.mkdir(parents=True, exist_ok=True)

    return setup


def _lake_is_file(root: Path) -> None:
    shutil_rmtree(root / "lake")
    (root / "lake").write_text("not a folder\n")


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- the validate corpus (tests/cases), every error it can find without a database ------------

#: cases of tests/cases/ that need a database to be found (upstream drift, the warehouse's compiler),
#: are warnings, or are not errors of a run (a selection given to validate)
NOT_HERE = {
    "upstream-column-missing",
    "upstream-column-retyped",
    "upstream-table-missing",
    "warehouse-extra-output-column",
    "warehouse-missing-column",
    "warehouse-narrowing",
    "warehouse-type-mismatch",
    "extract-settings-on-view",
    "redundant-depends-on",
    "split-by-nullable",
    "unneeded-depends-on",
    "selection-unknown-tag",
    "spark-job-without-pyspark",
    "freshness-on-view",
}


def _reused() -> list[Case]:
    import yaml

    found = []
    names = sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
    for index, name in enumerate(names):  # (the index over every case: a case added to NOT_HERE moves no other)
        if name in NOT_HERE:
            continue
        spec = yaml.safe_load((CASES_DIR / name / "expected.yaml").read_text(encoding="utf-8"))
        expected = spec["expected"]
        # a query's problem is found by the commands that build it; extract builds nothing
        file = str(expected.get("file", ""))
        builds = expected["code"].startswith(("bind-", "output-column-")) or file.endswith(".sql")
        command = (RUN, LOAD)[index % 2] if builds else COMMANDS[index % len(COMMANDS)]
        found.append(Case(f"validate-corpus/{name}", command, expected["message"], from_case=name))
    return found


# -- conveyor.yaml ---------------------------------------------------------------------------

CONFIG = [
    Case("config/empty", RUN, "conveyor.yaml", files={"conveyor.yaml": ""}),
    Case("config/a-list", RUN, "mapping", files={"conveyor.yaml": "- a\n- b\n"}),
    Case("config/a-scalar", EXTRACT, "mapping", files={"conveyor.yaml": "just words\n"}),
    Case("config/binary", LOAD, "conveyor.yaml", files={"conveyor.yaml": os.urandom(4096)}),
    Case("config/not-utf8", RUN, "UTF-8", files={"conveyor.yaml": SETTINGS.encode() + b"# caf\xe9\n"}),
    Case("config/tab-indent", RUN, "conveyor.yaml", files={"conveyor.yaml": SETTINGS.replace("  shop:", "\tshop:")}),
    Case("config/a-folder", RUN, "conveyor.yaml", setup=_mkdir("conveyor.yaml")),
    Case("config/missing-name", EXTRACT, "name", files=settings("name: cases\n", "")),
    Case("config/unknown-top-key", LOAD, "sourcse", files=settings("sources:", "sourcse:")),
    Case("config/source-unknown-type", EXTRACT, "type", files=source("upstream.db", "oracle")),
    Case("config/source-name-not-identifier", RUN, "not a valid name", files=settings("  shop:\n", "  sh-op:\n")),
    Case("config/env-unknown-type", LOAD, "type", files=environment("warehouse/dev.duckdb", "snowflake")),
    Case(
        "config/no-environments",
        LOAD,
        "environment",
        files=settings(
            "environments:\n  dev:\n    type: duckdb\n    dsn: warehouse/dev.duckdb\n", "environments: {}\n"
        ),
    ),
    Case("config/unknown-default-environment", RUN, "prod", files=more_settings("default_environment: prod\n")),
    Case("config/part-rows-too-small", EXTRACT, "part_rows", files=more_settings("lake:\n  part_rows: 10\n")),
    Case("config/jobs-zero", RUN, "jobs", files=more_settings("defaults:\n  jobs: 0\n")),
    Case("config/jobs-a-word", RUN, "jobs", files=more_settings("defaults:\n  jobs: many\n")),
    Case("config/keep-zero", EXTRACT, "keep", files=more_settings("lake:\n  keep: 0\n")),
    Case("config/compression-unknown", EXTRACT, "compression", files=more_settings("lake:\n  compression: lz77\n")),
    Case("config/lock-timeout-negative", EXTRACT, "lock_timeout", files=more_settings("lake:\n  lock_timeout: -1\n")),
    Case(
        "config/retry-attempts-zero", EXTRACT, "attempts", files=more_settings("defaults:\n  retry:\n    attempts: 0\n")
    ),
    Case(
        "config/duplicate-source",
        RUN,
        "sources",
        files=more_settings("sources:\n  x:\n    type: sqlite\n    dsn: a.db\n"),
    ),
    Case(
        "config/job-type-unknown",
        EXTRACT,
        "job_type",
        files=settings("    dsn: upstream.db\n", "    dsn: upstream.db\n    job_type: lambda\n"),
    ),
    Case("config/search-path-a-string", LOAD, "search_path", files=more_settings("defaults:\n  search_path: 7\n")),
    Case("config/required-unknown-tag", LOAD, "tag:nosuch", files=more_settings("required: ['tag:nosuch']\n")),
    Case(
        "config/tracking-unknown-scheme",
        RUN,
        "tracking",
        files=more_settings("tracking:\n  dsn: mysql://root@127.0.0.1/x\n"),
    ),
    Case(
        "config/tracking-under-a-file",
        RUN,
        "tracking",
        files=more_settings("tracking:\n  dsn: sqlite:///upstream.db/tracking.db\n"),
    ),
    Case(
        "config/billion-laughs",
        RUN,
        "alias",
        files={
            "conveyor.yaml": SETTINGS
            + 'lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
            + "".join(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 10))
        },
    ),
    Case(
        "config/deep-nesting-flow",
        RUN,
        "conveyor.yaml",
        files={"conveyor.yaml": SETTINGS + "x: " + "[" * 50_000 + "]" * 50_000 + "\n"},
    ),
    Case(
        "config/deep-nesting-block",
        RUN,
        "conveyor.yaml",
        files={"conveyor.yaml": SETTINGS + "".join(f"{'  ' * i}k{i}:\n" for i in range(3000)) + "  " * 3000 + "v\n"},
    ),
    Case(
        "config/huge",
        RUN,
        "conveyor.yaml",
        files={"conveyor.yaml": SETTINGS + "description: " + "x" * 30_000_000 + "\nbogus: 1\n"},
    ),
]

# -- defect 7: what validate can tell without a database, before anything is written ----------

PATHS = [
    Case("paths/lake-is-a-file", RUN, "lake", setup=_lake_is_file),
    Case("paths/lake-is-a-file-extract", EXTRACT, "lake", setup=_lake_is_file),
    Case("paths/lake-under-a-file", EXTRACT, "lake", files=more_settings("lake:\n  path: upstream.db/lake\n")),
    Case("paths/lake-read-only", EXTRACT, "lake", files=more_settings("lake:\n  path: /sys/conveyor-lake\n")),
    Case("paths/lake-read-only-run", RUN, "lake", files=more_settings("lake:\n  path: /proc/conveyor-lake\n")),
    Case("paths/sqlite-source-missing", EXTRACT, "upstream", files={"upstream.db": None}),
    Case("paths/sqlite-source-missing-run", RUN, "nowhere.db", files=source("nowhere.db")),
    Case("paths/sqlite-source-a-folder", EXTRACT, "upstream", setup=_mkdir("upstream.db")),
    Case(
        "paths/sqlite-source-not-sqlite", EXTRACT, "upstream", files={"upstream.db": b"this is not a database\n" * 100}
    ),
    Case("paths/duckdb-env-under-a-file", LOAD, "upstream.db", files=environment("upstream.db/dev.duckdb")),
    Case("paths/duckdb-env-a-folder", LOAD, "dsn", setup=_mkdir("warehouse/dev.duckdb")),
    Case("paths/duckdb-env-a-folder-run", RUN, "dsn", setup=_mkdir("warehouse/dev.duckdb")),
    Case("paths/duckdb-env-not-duckdb", LOAD, "dev.duckdb", files={"warehouse/dev.duckdb": b"garbage" * 1000}),
    Case("paths/duckdb-env-read-only-place", RUN, "dsn", files=environment("/proc/dev.duckdb")),
    Case(
        "paths/duckdb-env-postgres-url",
        RUN,
        "postgres",
        files=environment("postgresql://postgres@127.0.0.1:5432/postgres"),
    ),
    Case("paths/duckdb-env-mysql-url", LOAD, "mysql", files=environment("mysql://root@127.0.0.1/x")),
    Case("paths/postgres-env-a-file-path", LOAD, "postgres", files=environment("warehouse/dev.duckdb", "postgres")),
    Case(
        "paths/postgres-env-duckdb-url",
        RUN,
        "postgres",
        files=environment("duckdb:///warehouse/dev.duckdb", "postgres"),
    ),
    Case("paths/redshift-env-a-file-path", LOAD, "redshift", files=environment("warehouse/dev.duckdb", "redshift")),
    Case("paths/postgres-source-sqlite-path", EXTRACT, "postgres", files=source("upstream.db", "postgres")),
    Case(
        "paths/mysql-source-postgres-url",
        EXTRACT,
        "mysql",
        files=source("postgresql://postgres@127.0.0.1/postgres", "mysql"),
    ),
    Case(
        "paths/sqlite-source-postgres-url", EXTRACT, "sqlite", files=source("postgresql://postgres@127.0.0.1/postgres")
    ),
    Case("paths/lake-source-missing-folder", EXTRACT, "nowhere", files=source("nowhere/data", "lake")),
    Case("paths/credentials-file-a-folder", RUN, "credentials", setup=_mkdir(".env")),
    Case("paths/credentials-file-not-utf8", RUN, ".env", files={".env": b"TOKEN=caf\xe9\n"}),
    Case("paths/credentials-file-binary", EXTRACT, ".env", files={".env": bytes(range(256)) * 4}),
    Case(
        "paths/credentials-file-not-utf8-named",
        LOAD,
        "secrets.env",
        files={**more_settings("credentials_file: secrets.env\n"), "secrets.env": b"A=1\nB=\xff\xfe\n"},
    ),
    Case("paths/unset-var-in-env-dsn", LOAD, "WAREHOUSE_FILE", files=environment("${WAREHOUSE_FILE}")),
    Case("paths/unset-var-in-source-dsn", EXTRACT, "UPSTREAM_FILE", files=source("${UPSTREAM_FILE}")),
    Case(
        "paths/inline-password-env",
        LOAD,
        "password",
        files=environment("postgresql://u:hunter2@127.0.0.1/x", "postgres"),
    ),
    Case("paths/unclosed-var", RUN, "${", files=source("${UPSTREAM")),
]

# -- designs beyond the validate corpus ------------------------------------------------------

DOTTED = "name: shop.dotted\ncolumns:\n  - {name: id, type: integer}\nsource_table: "
DESIGNS = [
    Case(
        "designs/dotted-upstream-name-unquoted",
        EXTRACT,
        'main."dotted.name"',
        files={"schemas/shop/dotted.yaml": DOTTED + "main.dotted.name\n"},
    ),
    Case(
        "designs/dotted-upstream-name-unquoted-run",
        RUN,
        "more than one dot",
        files={"schemas/shop/dotted.yaml": DOTTED + "a.b.c.d\n"},
    ),
    Case("designs/pk-column-missing", RUN, "primary", files=orders("primary_key: [id]", "primary_key: [order_id]")),
    Case(
        "designs/pk-column-missing-extract",
        EXTRACT,
        "order_id",
        files=orders("primary_key: [id]", "primary_key: [order_id]"),
    ),
    Case(
        "designs/pk-column-missing-load", LOAD, "order_id", files=orders("primary_key: [id]", "primary_key: [order_id]")
    ),
    Case(
        "designs/pk-column-missing-update",
        UPDATE,
        "order_id",
        files=orders("primary_key: [id]", "primary_key: [order_id]"),
    ),
    Case("designs/cursor-missing-run", RUN, "changed_at", files=orders("cursor: updated_at", "cursor: changed_at")),
    Case(
        "designs/cursor-missing-extract",
        EXTRACT,
        "changed_at",
        files=orders("cursor: updated_at", "cursor: changed_at"),
    ),
    Case("designs/split-by-missing", EXTRACT, "order_no", files=orders("split_by: id", "split_by: order_no")),
    Case(
        "designs/unique-missing",
        LOAD,
        "nope",
        files=orders("primary_key: [id]", "primary_key: [id]\n  unique: [[nope]]"),
    ),
    Case("designs/binary", RUN, "orders.yaml", files={"schemas/shop/orders.yaml": os.urandom(2048)}),
    Case(
        "designs/not-utf8",
        EXTRACT,
        "orders.yaml",
        files={"schemas/shop/orders.yaml": ORDERS.encode() + b"description: caf\xe9\n"},
    ),
    Case("designs/empty", RUN, "orders.yaml", files={"schemas/shop/orders.yaml": ""}),
    Case("designs/a-list", RUN, "orders.yaml", files={"schemas/shop/orders.yaml": "- 1\n"}),
    Case("designs/a-folder", RUN, "shop.orders", setup=_mkdir("schemas/shop/orders.yaml")),
    Case(
        "designs/deep-nesting",
        LOAD,
        "orders.yaml",
        files={"schemas/shop/orders.yaml": ORDERS + "description: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n"},
    ),
    Case(
        "designs/huge-garbage",
        RUN,
        "orders.yaml",
        files={"schemas/shop/orders.yaml": ORDERS + "bogus: " + "y" * 20_000_000 + "\n"},
    ),
    Case("designs/column-type-unknown", LOAD, "money", files=orders("type: decimal(10,2)", "type: money")),
    Case("designs/decimal-scale-too-big", LOAD, "decimal", files=orders("type: decimal(10,2)", "type: decimal(2,10)")),
    Case(
        "designs/kind-unknown",
        RUN,
        "kind",
        files={"schemas/mart/order_days.yaml": ORDER_DAYS.replace("kind: ctas", "kind: matview")},
    ),
    Case(
        "designs/kind-table-like-dbt",
        LOAD,
        'did you mean "ctas"',
        files={"schemas/mart/order_days.yaml": ORDER_DAYS.replace("kind: ctas", "kind: table")},
    ),
    Case(
        "designs/flow-mapping-decimal-unquoted",
        RUN,
        "quote it",
        files=orders("  - name: amount\n    type: decimal(10,2)", "  - {name: amount, type: decimal(10,2)}"),
    ),
    Case("designs/lag-garbage", EXTRACT, "lag", files=orders("lag: 1 hour", "lag: soon")),
    Case(
        "designs/columns-not-a-list",
        RUN,
        "columns",
        files={"schemas/shop/customers.yaml": "name: shop.customers\ncolumns: many\n"},
    ),
    Case("designs/column-name-empty", RUN, "name", files=orders("  - name: note\n", "  - name: ''\n")),
    Case(
        "designs/upper-case-duplicate-on-duckdb",
        LOAD,
        "case",
        files=orders("  - name: note\n", "  - name: Note\n    type: text\n  - name: note\n"),
    ),
]

# -- transformations (SQL) -------------------------------------------------------------------

SQL = [
    Case("sql/binary", LOAD, "order_days.sql", files={"schemas/mart/order_days.sql": os.urandom(1024)}),
    Case("sql/not-utf8", RUN, "order_days.sql", files={"schemas/mart/order_days.sql": b"SELECT 'caf\xe9' AS day"}),
    Case("sql/empty", LOAD, "order_days.sql", files={"schemas/mart/order_days.sql": ""}),
    Case("sql/only-a-comment", LOAD, "order_days.sql", files={"schemas/mart/order_days.sql": "-- nothing here\n"}),
    Case(
        "sql/insert", RUN, "order_days.sql", files={"schemas/mart/order_days.sql": "INSERT INTO shop.orders VALUES (1)"}
    ),
    Case("sql/drop", RUN, "order_days.sql", files={"schemas/mart/order_days.sql": "DROP TABLE shop.orders"}),
    Case(
        "sql/deep-parentheses",
        LOAD,
        "order_days.sql",
        files={"schemas/mart/order_days.sql": "SELECT " + "(" * 5000 + "1" + ")" * 5000 + " AS day"},
    ),
    Case(
        "sql/huge",
        LOAD,
        "order_days.sql",
        files={
            "schemas/mart/order_days.sql": "SELECT 1 AS day FROM shop.orders WHERE "
            + " OR ".join(["id = 1"] * 200_000)
            + " AND"
        },
    ),
    Case(
        "sql/unknown-table",
        RUN,
        "shop.order",
        files={"schemas/mart/order_days.sql": "SELECT id AS day FROM shop.order"},
    ),
    Case(
        "sql/unknown-column",
        LOAD,
        "updated",
        files={"schemas/mart/order_days.sql": "SELECT updated AS day FROM shop.orders"},
    ),
    Case("sql/a-folder", RUN, "order_days.sql", setup=_mkdir("schemas/mart/order_days.sql")),
]

# -- selections and command-line flags --------------------------------------------------------

FLAGS = [
    Case("flags/unknown-relation", ("run", "shop.orderz"), "shop.orderz"),
    Case("flags/unknown-tag", ("load", "tag:nosuch"), "tag:nosuch"),
    Case("flags/unknown-schema", ("extract", "shopp"), "shopp"),
    Case("flags/empty-glob", ("extract", "*.nothing_*"), "nothing"),
    Case("flags/bad-plus", ("run", "++shop.orders"), "shop.orders"),
    Case("flags/unknown-env", ("load", "--env", "prod"), "prod"),
    Case("flags/unknown-env-run", ("run", "-e", "staging"), "staging"),
    Case("flags/unknown-option", ("run", "--fast"), "--fast"),
    Case("flags/jobs-zero", ("run", "--jobs", "0"), "jobs"),
    Case("flags/jobs-a-word", ("extract", "--jobs", "x"), "jobs"),
    Case("flags/unknown-command", ("lod",), "lod"),
    Case("flags/update-unknown", ("update", "shop.nope"), "shop.nope"),
    Case("flags/continue-from-unknown", ("load", "--continue-from", "mart.nope"), "resume"),
    Case("flags/resume-nothing-failed", ("load", "--resume"), "resume"),
    Case("flags/project-missing", ("-p", "/nonexistent/project", "run"), "conveyor.yaml"),
    Case("flags/format-unknown", ("run", "--format", "xml"), "xml"),
    Case("flags/pipeline-unknown", ("pipeline", "run", "nightly"), "nightly"),
]

# -- pipelines -------------------------------------------------------------------------------

PIPELINE_OK = "schedule: manual\nenvironments: {primary: dev}\n"
PIPELINES = [
    Case(
        "pipelines/unknown-key",
        ("pipeline", "run", "p"),
        "stpes",
        files={"pipelines/p.yaml": PIPELINE_OK + "stpes: []\n"},
    ),
    Case(
        "pipelines/environments-one-word",
        ("pipeline", "run", "p"),
        "expected a mapping",
        files={"pipelines/p.yaml": "schedule: manual\nenvironments: dev\n"},
    ),
    Case(
        "pipelines/unknown-environment",
        ("pipeline", "run", "p"),
        "prod",
        files={"pipelines/p.yaml": "schedule: manual\nenvironments: {primary: prod}\n"},
    ),
    Case(
        "pipelines/bad-cron",
        ("pipeline", "run", "p"),
        "schedule",
        files={"pipelines/p.yaml": "schedule: '61 * * * *'\nenvironments: {primary: dev}\n"},
    ),
    Case("pipelines/binary", ("pipeline", "run", "p"), "p.yaml", files={"pipelines/p.yaml": os.urandom(512)}),
    Case(
        "pipelines/design-broken",
        ("pipeline", "run", "p"),
        "order_id",
        files={"pipelines/p.yaml": PIPELINE_OK, **orders("primary_key: [id]", "primary_key: [order_id]")},
        records=True,
    ),
    Case(
        "pipelines/lake-is-a-file",
        ("pipeline", "run", "p"),
        "lake",
        files={"pipelines/p.yaml": PIPELINE_OK},
        setup=_lake_is_file,
        records=True,
    ),
    Case(
        "pipelines/selection-unknown",
        ("pipeline", "run", "p"),
        "shop.nope",
        files={"pipelines/p.yaml": PIPELINE_OK + "selection: [shop.nope]\n"},
    ),
]

# -- PostgreSQL warehouse ----------------------------------------------------------------------

PG = [
    Case(
        "pg/pk-column-missing",
        ("run", "-e", "pg"),
        "order_id",
        base="pg",
        files=orders("primary_key: [id]", "primary_key: [order_id]"),
    ),
    Case(
        "pg/cursor-missing",
        ("load", "-e", "pg"),
        "changed_at",
        base="pg",
        files=orders("cursor: updated_at", "cursor: changed_at"),
    ),
    Case("pg/lake-is-a-file", ("run", "-e", "pg"), "lake", base="pg", setup=_lake_is_file),
    Case(
        "pg/long-name",
        ("load", "-e", "pg"),
        "63",
        base="pg",
        files={
            "schemas/mart/" + "a" * 64 + ".yaml": f"name: mart.{'a' * 64}\nkind: ctas\n",
            "schemas/mart/" + "a" * 64 + ".sql": "SELECT 1 AS x\n",
        },
    ),
    Case(
        "pg/long-column",
        ("run", "-e", "pg"),
        "63",
        base="pg",
        files=orders("  - name: note\n", "  - name: " + "n" * 64 + "\n"),
    ),
    Case(
        "pg/sql-unknown-column",
        ("load", "-e", "pg"),
        "updated",
        base="pg",
        files={"schemas/mart/order_days.sql": "SELECT updated AS day FROM shop.orders"},
    ),
]

CASES: list[Case] = [*_reused(), *CONFIG, *PATHS, *DESIGNS, *SQL, *FLAGS, *PIPELINES, *PG]
