"""Awkward identifiers: spaces, quotes, reserved words, non-ASCII and '%' in upstream names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from .conftest import Upstream, extract, lake, load, manifest_table, result_of, warehouse_rows, write_project

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def odd_project(tmp_path: Path, upstream: Upstream, table: str, cursor: str) -> tuple[Path, str, str]:
    """A 60-row upstream table with awkward names and a partitioned incremental design ``up.weird`` for it.

    Returns the project, the table's quoted upstream name and its lake name.
    """
    q = upstream.quote
    if upstream.engine == "postgres":
        upstream.execute('CREATE SCHEMA "My Schema"')
        schema, stamp = "My Schema", "timestamptz"
    else:
        schema, stamp = upstream.schema, "datetime(6)"
    qualified = f"{q(schema)}.{q(table)}"
    upstream.execute(f"CREATE TABLE {qualified} ({q('a b')} int PRIMARY KEY, {q('Select')} text, {q(cursor)} {stamp})")
    values = [v for i in range(1, 61) for v in (i, f"s{i}", upstream.stamp(T0 + timedelta(seconds=i)))]
    upstream.execute(f"INSERT INTO {qualified} VALUES " + ", ".join(["(%s, %s, %s)"] * 60), values)
    design = {
        "source_table": f"{schema}.{table}",
        "columns": [
            {"name": "a b", "type": "integer"},
            {"name": "Select", "type": "text"},
            {"name": cursor, "type": upstream.timestamp_design},
        ],
        "constraints": {"primary_key": ["a b"]},
        "extract": {"split_by": "a b", "partitions": 3, "incremental": {"cursor": cursor}},
    }
    root = write_project(tmp_path / "p", upstream.engine, designs={"weird": design})
    return root, qualified, "up.weird"


def test_quotes_spaces_and_reserved_words(tmp_path: Path, upstream: Upstream) -> None:
    cursor = 'Upd "At" `ü`'
    root, qualified, lake_table = odd_project(tmp_path, upstream, 'Weird "T" `ü`', cursor)
    first = extract(root)
    assert first.ok, result_of(first, "up.weird").error
    assert lake(root).latest("up", lake_table).rows == 60

    q = upstream.quote
    upstream.execute(
        f"UPDATE {qualified} SET {q('Select')} = 'new', {q(cursor)} = %s WHERE {q('a b')} = 7",
        (upstream.stamp(T0 + timedelta(days=1)),),
    )
    second = extract(root)
    assert second.ok, result_of(second, "up.weird").error
    increment = lake(root).latest("up", lake_table)
    # row 7 changed; row 60 sits at the previous watermark and is read again (merged by key)
    got = sorted(manifest_table(increment).to_pylist(), key=lambda r: r["a b"])
    assert increment.incremental and [r["Select"] for r in got] == ["new", "s60"]
    load(root)
    rows = warehouse_rows(root, "up.weird", '"a b"')
    assert len(rows) == 60 and rows[6][:2] == (7, "new")


def test_percent_sign_in_a_column_name(tmp_path: Path, upstream: Upstream) -> None:
    root, _, lake_table = odd_project(tmp_path, upstream, "rates", "changed%")
    first = extract(root)
    assert first.ok, result_of(first, "up.weird").error
    assert lake(root).latest("up", lake_table).rows == 60
