"""Incremental extraction against the real engines: exact increments, exact watermarks, exact loads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    Upstream,
    columns,
    extract,
    extract_attempts,
    extract_state,
    lake,
    load,
    manifest_table,
    result_of,
    warehouse_rows,
    write_design,
    write_project,
)

T0 = datetime(2024, 3, 1, 12, 0, 0, 1, tzinfo=UTC)


def items_project(tmp_path: Path, upstream: Upstream, **incremental: Any) -> Path:
    upstream.execute(
        f"CREATE TABLE items (id integer PRIMARY KEY, name varchar(50), amount decimal(10,2), "
        f"updated_at {upstream.timestamp_sql} NOT NULL)"
    )
    rows = [
        (i, f"item {i}", Decimal(i) / 4, upstream.stamp(T0 + timedelta(seconds=i, microseconds=i)))
        for i in range(1, 101)
    ]
    upstream.execute("INSERT INTO items VALUES " + ", ".join(["(%s, %s, %s, %s)"] * len(rows)), sum(rows, ()))
    design = upstream.table_design(
        "items",
        columns(
            ("id", "integer"), ("name", "text"), ("amount", "decimal(10,2)"), ("updated_at", upstream.timestamp_design)
        ),
        constraints={"primary_key": ["id"]},
        extract={"incremental": {"cursor": "updated_at", **incremental}},
    )
    return write_project(tmp_path / "p", upstream.engine, designs={"items": design})


def upstream_items(upstream: Upstream) -> list[tuple[Any, ...]]:
    rows = upstream.execute("SELECT id, name, amount, updated_at FROM items ORDER BY id")
    if upstream.engine == "mysql":
        return rows
    return [(i, n, a, u.astimezone(UTC)) for i, n, a, u in rows]


def loaded_items(root: Path) -> list[tuple[Any, ...]]:
    rows = warehouse_rows(root, "up.items", "id")
    return [(i, n, a, u.astimezone(UTC) if u.tzinfo else u) for i, n, a, u in rows]


def stamp_text(upstream: Upstream, value: datetime) -> str:
    return upstream.stamp(value).isoformat()


def test_increments_pick_up_exactly_the_new_and_changed_rows(tmp_path: Path, upstream: Upstream, cli) -> None:
    root = items_project(tmp_path, upstream)
    table = "up.items"

    first = extract(root)
    assert first.ok, first.extract
    full = lake(root).latest("up", table)
    assert full is not None and not full.incremental and full.rows == 100
    high1 = stamp_text(upstream, T0 + timedelta(seconds=100, microseconds=100))
    assert full.watermark == {"cursor": "updated_at", "type": upstream.timestamp_design, "low": None, "value": high1}

    # five new rows, three changed ones; the newest change has odd microseconds
    late = datetime(2024, 3, 1, 13, 0, tzinfo=UTC)
    for i in range(101, 106):
        upstream.execute(
            "INSERT INTO items VALUES (%s, %s, %s, %s)", (i, f"new {i}", Decimal("1.01"), upstream.stamp(late))
        )
    for i, micros in ((2, 1), (50, 987654), (99, 500000)):
        upstream.execute(
            "UPDATE items SET name = %s, amount = amount + 1, updated_at = %s WHERE id = %s",
            (f"changed {i}", upstream.stamp(late + timedelta(seconds=7, microseconds=micros)), i),
        )
    second = extract(root)
    assert second.ok, second.extract
    increment = lake(root).latest("up", table)
    assert increment is not None and increment.incremental
    assert increment.extract_id == result_of(second, "up.items").extract_id
    # the bound is inclusive: row 100, at the previous high-water mark, is read again
    assert increment.rows == 9
    got = sorted(manifest_table(increment).to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in got] == [2, 50, 99, 100, 101, 102, 103, 104, 105]
    by_id = {row[0]: row for row in upstream_items(upstream)}
    for row in got:
        stamp = row["updated_at"]
        assert (row["id"], row["name"], row["amount"], stamp) == by_id[row["id"]]
    high2 = stamp_text(upstream, late + timedelta(seconds=7, microseconds=987654))
    assert increment.watermark == {
        "cursor": "updated_at",
        "type": upstream.timestamp_design,
        "low": high1,
        "value": high2,
    }
    assert ".987654" in high2

    status = cli(root, "extract", "status", "--format", "json")
    assert status.code == 0, status.output
    (state,) = [s for s in status.json() if s["table_name"] == table]
    assert state["status"] == "succeeded" and state["rows"] == 9
    assert state["upstream_table"] == upstream.lake_table("items")
    assert state["last_success_extract_id"] == increment.extract_id
    assert json.loads(state["watermark"]) == {"cursor": "updated_at", "type": upstream.timestamp_design, "value": high2}

    # nothing new: the increment holds only the row at the watermark again, which stays
    third = extract(root)
    assert result_of(third, "up.items").rows == 1
    assert lake(root).latest("up", table).watermark["value"] == high2
    assert json.loads(extract_state(root)[table].watermark)["value"] == high2

    load(root)
    assert loaded_items(root) == upstream_items(upstream)

    # --full reads everything again; the next increment builds on it and loads stay exact
    again = cli(root, "extract", "--full")
    assert again.code == 0, again.output
    refreshed = lake(root).latest("up", table)
    assert not refreshed.incremental and refreshed.rows == 105 and refreshed.watermark["value"] == high2
    upstream.execute("DELETE FROM items WHERE id = 3")  # only a full extract sees deletes
    upstream.execute(
        "UPDATE items SET name = 'after full', updated_at = %s WHERE id = 4",
        (upstream.stamp(late + timedelta(days=1)),),
    )
    assert extract(root).ok
    assert lake(root).latest("up", table).rows == 2  # row 4, and row 50 at the watermark
    load(root)
    current = upstream_items(upstream)
    assert [r for r in loaded_items(root) if r[0] != 3] == current
    reingest = cli(root, "extract", "--event", "-", stdin='{"tables": ["items"], "reingest": true}')
    assert reingest.code == 0, reingest.output
    assert not lake(root).latest("up", table).incremental  # reingest is --full
    load(root)
    assert loaded_items(root) == current


def test_integer_cursor_with_lag_rereads_the_overlap(tmp_path: Path, upstream: Upstream) -> None:
    base = 2**53  # beyond a double's exact integers: watermarks must stay exact
    upstream.execute("CREATE TABLE events (id bigint PRIMARY KEY, v varchar(20))")
    for i in range(1, 21):
        upstream.execute("INSERT INTO events VALUES (%s, %s)", (base + i, f"v{i}"))
    design = upstream.table_design(
        "events",
        columns(("id", "bigint"), ("v", "text")),
        constraints={"primary_key": ["id"]},
        extract={"incremental": {"cursor": "id", "lag": 5}},
    )
    root = write_project(tmp_path / "p", upstream.engine, designs={"events": design})
    table = "up.events"
    assert extract(root).ok
    assert lake(root).latest("up", table).watermark["value"] == base + 20

    for i in range(21, 31):
        upstream.execute("INSERT INTO events VALUES (%s, %s)", (base + i, f"v{i}"))
    upstream.execute("UPDATE events SET v = 'late' WHERE id = %s", (base + 18,))  # inside the overlap
    assert extract(root).ok
    increment = lake(root).latest("up", table)
    assert increment.incremental
    assert increment.watermark == {"cursor": "id", "type": "bigint", "low": base + 15, "value": base + 30}
    assert sorted(r["id"] for r in manifest_table(increment).to_pylist()) == [base + i for i in range(15, 31)]

    load(root)
    expected = upstream.execute("SELECT id, v FROM events ORDER BY id")
    assert warehouse_rows(root, "up.events", "id") == [tuple(r) for r in expected]
    assert (base + 18, "late") in warehouse_rows(root, "up.events", "id")


def test_failed_increment_does_not_move_the_watermark(tmp_path: Path, upstream: Upstream) -> None:
    root = items_project(tmp_path, upstream)
    table = "up.items"
    assert extract(root).ok
    committed = lake(root).latest("up", table)
    high1 = committed.watermark["value"]
    stored = extract_state(root)[table].watermark

    later = T0 + timedelta(days=1, microseconds=424242)
    upstream.execute(
        "INSERT INTO items VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)",
        (201, "a", Decimal("2.00"), upstream.stamp(later), 202, "b", Decimal("3.00"), upstream.stamp(later)),
    )
    upstream.execute("ALTER TABLE items DROP COLUMN name")
    failed = extract(root)
    assert not failed.ok
    error = result_of(failed, "up.items").error
    assert '"name"' in error and "items" in error
    assert lake(root).latest("up", table).extract_id == committed.extract_id
    state = extract_state(root)[table]
    assert state.status == "failed" and state.watermark == stored
    assert state.last_success_extract_id == committed.extract_id
    assert [d.name for d in (root / "lake/data/up" / table).iterdir() if d.is_dir()] == [committed.extract_id]

    upstream.execute("ALTER TABLE items ADD COLUMN name varchar(50)")
    retried = extract(root)
    assert retried.ok, retried.extract
    increment = lake(root).latest("up", table)
    assert increment.incremental and increment.rows == 3  # 201, 202 and row 100 at the watermark
    assert increment.watermark["low"] == high1
    assert increment.watermark["value"] == stamp_text(upstream, later)
    load(root)
    loaded = warehouse_rows(root, "up.items", "id")
    assert [r[0] for r in loaded] == [r[0] for r in upstream.execute("SELECT id FROM items ORDER BY id")]
    assert [(r[0], r[1], r[2]) for r in loaded[-2:]] == [(201, None, Decimal("2.00")), (202, None, Decimal("3.00"))]


def test_partitioned_increments_of_an_instant_cursor(tmp_path: Path, upstream: Upstream) -> None:
    """An instant cursor (PostgreSQL timestamptz, MariaDB TIMESTAMP) with split_by: increments stay exact."""
    kind = "timestamptz" if upstream.engine == "postgres" else "timestamp(6) NULL"
    upstream.execute(f"CREATE TABLE logs (id integer PRIMARY KEY, at {kind})")
    stamps = [T0 + timedelta(minutes=i, microseconds=i) for i in range(1, 301)]
    upstream.execute(
        "INSERT INTO logs VALUES " + ", ".join(["(%s, %s)"] * 300),
        tuple(v for i, at in enumerate(stamps, 1) for v in (i, upstream.stamp(at))),
    )
    design = upstream.table_design(
        "logs",
        columns(("id", "integer"), ("at", "timestamptz")),
        constraints={"primary_key": ["id"]},
        extract={"split_by": "id", "partitions": 3, "incremental": {"cursor": "at", "lag": "90 seconds"}},
    )
    root = write_project(tmp_path / "p", upstream.engine, designs={"logs": design})
    table = "up.logs"
    assert extract(root).ok
    first = lake(root).latest("up", table)
    assert first.rows == 300 and first.watermark["value"] == stamps[-1].isoformat()

    upstream.execute(
        "UPDATE logs SET at = %s WHERE id IN (5, 150, 290)", (upstream.stamp(stamps[-1] + timedelta(hours=1)),)
    )
    upstream.execute("INSERT INTO logs VALUES (301, NULL)")  # a NULL cursor is never picked up by an increment
    assert extract(root).ok
    increment = lake(root).latest("up", table)
    # everything after (watermark - 90 s): the two newest originals (lag overlap) and the three moved rows
    assert sorted(r["id"] for r in manifest_table(increment).to_pylist()) == [5, 150, 290, 299, 300]
    assert increment.watermark["low"] == (stamps[-1] - timedelta(seconds=90)).isoformat()
    assert increment.watermark["value"] == (stamps[-1] + timedelta(hours=1)).isoformat()
    load(root)
    expected = upstream.execute("SELECT id FROM logs WHERE id <> 301 ORDER BY id")
    assert [r[0] for r in warehouse_rows(root, "up.logs", "id")] == [r[0] for r in expected]


@pytest.mark.parametrize("upstream", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_increment_records_its_low_watermark_in_the_tracking_store(tmp_path: Path, upstream: Upstream) -> None:
    root = items_project(tmp_path, upstream)
    table = "up.items"
    assert extract(root).ok
    upstream.execute(
        "INSERT INTO items VALUES (%s, %s, %s, %s)", (500, "x", Decimal(1), upstream.stamp(T0 + timedelta(days=3)))
    )
    assert extract(root).ok
    increment = lake(root).latest("up", table)
    (attempt,) = [a for a in extract_attempts(root, table) if a.extract_id == increment.extract_id]
    assert json.loads(attempt.watermark_high)["value"] == increment.watermark["value"]
    assert attempt.watermark_low is not None, "the extracts table never learns the range an increment read"
    assert json.loads(attempt.watermark_low)["value"] == increment.watermark["low"]


@pytest.mark.parametrize("upstream", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_changing_the_cursor_starts_over_with_a_full_extract(tmp_path: Path, upstream: Upstream, cli) -> None:
    root = items_project(tmp_path, upstream)
    other = upstream.table_design("others", columns(("id", "integer")))
    upstream.execute("CREATE TABLE others (id integer)")
    upstream.execute("INSERT INTO others VALUES (1)")
    write_design(root, "others", other)
    items = upstream.table_design(
        "items",
        columns(
            ("id", "integer"), ("name", "text"), ("amount", "decimal(10,2)"), ("updated_at", upstream.timestamp_design)
        ),
        constraints={"primary_key": ["id"]},
        extract={"incremental": {"cursor": "id"}},
    )
    write_design(root, "items", items)
    assert extract(root).ok
    upstream.execute("UPDATE items SET updated_at = %s WHERE id = 1", (upstream.stamp(T0 + timedelta(days=9)),))

    items["extract"]["incremental"]["cursor"] = "updated_at"  # an int watermark cannot bound a timestamp
    write_design(root, "items", items)
    result = cli(root, "extract")
    assert "Internal error" not in result.stderr, result.stderr
    assert lake(root).latest("up", "up.others").extract_id is not None
    latest = lake(root).latest("up", "up.items")
    assert not latest.incremental and latest.rows == 100
    assert latest.watermark["cursor"] == "updated_at"
