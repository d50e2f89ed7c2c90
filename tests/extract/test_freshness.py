"""Source freshness against a real lake and tracking store: ages, statuses, fallbacks, the command."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testkit.cli import run_cli

from conveyor import api
from conveyor.design.durations import describe, parse_duration
from conveyor.errors import UserError
from conveyor.extract.freshness import status_of

NEWEST = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
EVENTS = [
    (1, "2026-02-27T08:00:00+00:00"),
    (2, NEWEST.isoformat()),
    # later as text, earlier in time (11:30:00.5 UTC): the newest value is compared as a time
    (3, "2026-03-01T13:30:00.5+02:00"),
]
DESIGNS = {
    "shop/events.yaml": """\
name: shop.events
columns:
  - {name: id, type: bigint, not_null: true}
  - {name: happened_at, type: timestamptz, not_null: true}
constraints: {primary_key: [id]}
extract:
  incremental: {cursor: happened_at}
freshness:
  warn_after: 12 hours
  error_after: 1 day
""",
    "shop/ticks.yaml": """\
name: shop.ticks
columns:
  - {name: id, type: bigint, not_null: true}
  - {name: label, type: text}
constraints: {primary_key: [id]}
extract:
  incremental: {cursor: id}
freshness: {error_after: 2 hours}
""",
    "shop/products.yaml": """\
name: shop.products
columns:
  - {name: id, type: integer}
  - {name: title, type: text}
  - {name: in_stock, type: boolean}
freshness: {measure: extract, warn_after: 1 hour}
""",
}


def add_upstream(root: Path) -> None:
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TIMESTAMPTZ NOT NULL)")
        con.executemany("INSERT INTO events VALUES (?, ?)", EVENTS)
        con.execute("CREATE TABLE ticks (id INTEGER PRIMARY KEY, label TEXT)")
        con.executemany("INSERT INTO ticks VALUES (?, ?)", [(1, "a"), (2, "b")])


def fresh_project(build: Callable[..., Path], root: Path) -> Path:
    root = build(root, designs=DESIGNS)
    add_upstream(root)
    return root


def extract(root: Path, *selection: str) -> api.Outcome:
    outcome = api.extract_tables(api.open_project(root), selection)
    assert outcome.ok, outcome.extract
    return outcome


def rows_of(root: Path, *selection: str, now: datetime | None = None) -> dict[str, Any]:
    return {row.relation: row for row in api.freshness(api.open_project(root), selection, now=now)}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory, new_project: Callable[..., Path]) -> Path:
    """The project, every source table extracted once."""
    root = fresh_project(new_project, tmp_path_factory.mktemp("fresh") / "p")
    extract(root)
    return root


# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 hours", timedelta(hours=12)),
        ("1 day", timedelta(days=1)),
        ("1 Day 12 Hours", timedelta(days=1, hours=12)),
        ("90 min", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1.5 weeks", timedelta(weeks=1.5)),
        ("45 seconds", timedelta(seconds=45)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "12", "1 dya", "0 hours", "-1 day", "hours 12", "1 day,"])
def test_what_is_not_a_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as raised:
        parse_duration(text)
    assert '"12 hours"' in str(raised.value)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from([("s", 1), ("seconds", 1), ("min", 60), ("hours", 3600), ("day", 86400), ("w", 604800)]),
)
def test_a_number_and_a_unit_is_that_many_seconds(amount: int, unit: tuple[str, int]) -> None:
    if amount == 0:
        with pytest.raises(ValueError):
            parse_duration(f"{amount} {unit[0]}")
    else:
        assert parse_duration(f"{amount} {unit[0]}") == timedelta(seconds=amount * unit[1])


def test_ages_read_short() -> None:
    assert describe(timedelta(days=980, hours=2, minutes=5)) == "980 d 2 h"
    assert describe(timedelta(hours=4, minutes=12)) == "4 h 12 min"
    assert describe(timedelta(minutes=3)) == "3 min"
    assert describe(timedelta(seconds=35, microseconds=900)) == "35 s"
    assert describe(timedelta(seconds=-90)) == "-1 min 30 s"


# -- measuring -------------------------------------------------------------------------------


def test_a_table_never_extracted_is_unknown(make_project: Callable[..., Path]) -> None:
    root = make_project(designs=DESIGNS)
    add_upstream(root)
    rows = rows_of(root, "shop")
    assert {name: row.status for name, row in rows.items()} == {
        "shop.customers": "unknown",
        "shop.events": "unknown",
        "shop.orders": "unknown",
        "shop.products": "unknown",
        "shop.ticks": "unknown",
    }
    events = rows["shop.events"]
    assert (events.measure, events.cursor, events.newest, events.age, events.note) == (
        "cursor", "happened_at", None, None, "never extracted",
    )  # fmt: skip
    assert rows["shop.customers"].measure == "extract"  # no cursor to measure on
    # an unknown table with a threshold warns in a pipeline; one without has nothing to meet
    assert (events.event_status, rows["shop.customers"].event_status) == ("warned", "succeeded")
    # transformations have no freshness: they are passed over
    assert rows_of(root, "mart") == {}


def test_the_age_is_now_minus_the_newest_cursor_value_in_the_lake(extracted: Path) -> None:
    now = NEWEST + timedelta(hours=3)
    row = rows_of(extracted, "shop.events", now=now)["shop.events"]
    assert (row.measure, row.cursor, row.newest, row.age, row.status) == (
        "cursor", "happened_at", NEWEST, timedelta(hours=3), "ok",
    )  # fmt: skip
    assert row.newest is not None and row.newest.microsecond == 123456
    assert row.to_json() == {
        "relation": "shop.events",
        "source": "shop",
        "measure": "cursor",
        "cursor": "happened_at",
        "newest": "2026-03-01T12:00:00.123456+00:00",
        "age_s": 10800.0,
        "warn_after": "12 hours",
        "error_after": "1 day",
        "status": "ok",
        "note": None,
    }


@pytest.mark.parametrize(
    ("after", "status"),
    [
        (timedelta(0), "ok"),
        (timedelta(hours=12), "ok"),  # exactly warn_after old is not older than it
        (timedelta(hours=12, microseconds=1), "warn"),
        (timedelta(days=1), "warn"),
        (timedelta(days=1, microseconds=1), "error"),
        (timedelta(days=400), "error"),
    ],
)
def test_the_thresholds_are_exact_to_the_microsecond(extracted: Path, after: timedelta, status: str) -> None:
    row = rows_of(extracted, "shop.events", now=NEWEST + after)["shop.events"]
    assert (row.age, row.status) == (after, status)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(after=st.timedeltas(min_value=timedelta(hours=-1), max_value=timedelta(days=3)))
def test_any_moment_gets_the_status_its_age_says(extracted: Path, after: timedelta) -> None:
    row = rows_of(extracted, "shop.events", now=NEWEST + after)["shop.events"]
    expected = "error" if after > timedelta(days=1) else "warn" if after > timedelta(hours=12) else "ok"
    assert (row.age, row.status) == (after, expected)
    assert status_of(after, timedelta(hours=12), timedelta(days=1)) == expected


def test_a_cursor_that_is_not_a_time_falls_back_to_the_last_extract(extracted: Path) -> None:
    project = api.open_project(extracted)
    (state,) = [s for s in api.extract_status(project, "shop") if s.table_name == "shop.ticks"]
    with api.open_tracking(project) as store:
        found = store.get_extract(state.last_success_extract_id or "")
        assert found is not None
        started = found.started_at
    now = started + timedelta(hours=2, microseconds=1)
    row = rows_of(extracted, "shop.ticks", now=now)["shop.ticks"]
    assert (row.measure, row.newest, row.age, row.status) == ("extract", started, now - started, "error")
    assert row.note == 'the cursor "id" is bigint, not a time: measured on the last extract'
    assert rows_of(extracted, "shop.ticks", now=started + timedelta(hours=2))["shop.ticks"].status == "ok"


def test_measure_extract_is_when_the_last_successful_extract_started(make_project: Callable[..., Path]) -> None:
    root = make_project(designs=DESIGNS)
    add_upstream(root)
    extract(root, "shop.products")
    first = rows_of(root, "shop.products")["shop.products"]
    assert first.measure == "extract" and first.note is None and first.status == "ok"
    assert first.newest is not None and first.age is not None and first.age < timedelta(minutes=5)
    later = rows_of(root, "shop.products", now=first.newest + timedelta(hours=1, seconds=1))["shop.products"]
    assert later.status == "warn"

    extract(root, "shop.products")
    second = rows_of(root, "shop.products")["shop.products"]
    assert second.newest is not None and second.newest > first.newest

    # a failed extract does not make the table fresh
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("ALTER TABLE products RENAME TO gone")
    failed = api.extract_tables(api.open_project(root), ["shop.products"])
    assert not failed.ok
    assert rows_of(root, "shop.products")["shop.products"].newest == second.newest


def test_a_bad_threshold_is_an_error_at_its_line(make_project: Callable[..., Path]) -> None:
    root = make_project(designs={**DESIGNS, "shop/events.yaml": DESIGNS["shop/events.yaml"].replace("1 day", "1 dya")})
    with pytest.raises(UserError) as raised:
        api.freshness(api.open_project(root))
    assert raised.value.exit_code == 2
    assert str(raised.value.location) == "schemas/shop/events.yaml:10"
    assert '"1 dya" is not a duration' in raised.value.render()


def test_now_must_have_a_zone(extracted: Path) -> None:
    with pytest.raises(UserError, match="no time zone"):
        api.freshness(api.open_project(extracted), now=datetime(2026, 3, 1))


# -- the command -----------------------------------------------------------------------------


def test_the_command_prints_every_table_whole_and_exits_1_at_error(extracted: Path) -> None:
    # today is long after NEWEST: shop.events is past its error_after of 1 day
    done = run_cli("-p", str(extracted), "freshness", "shop.events", "shop.products", env={"COLUMNS": "60"})
    assert done.code == 1, done.output
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["table", "measure", "newest", "age", "warn", "after", "error", "after", "status"]
    assert lines[1].split()[:5] == ["shop.events", "cursor", "happened_at", "2026-03-01", "12:00:00.123456+00:00"]
    assert lines[1].split()[-5:] == ["12", "hours", "1", "day", "error"]
    assert lines[2].split()[:2] == ["shop.products", "extract"] and lines[2].split()[-1] == "ok"
    error = " ".join(done.stderr.split())
    assert error.startswith("Error: 1 source table is older than error_after: shop.events is ")
    assert "(cursor happened_at), more than error_after 1 day." in error
    assert "Traceback" not in done.stderr

    ok = run_cli("-p", str(extracted), "freshness", "shop.products", "--format", "json")
    assert ok.code == 0, ok.output
    (row,) = ok.json()
    assert (row["relation"], row["measure"], row["status"], row["warn_after"]) == (
        "shop.products", "extract", "ok", "1 hour",
    )  # fmt: skip
    assert datetime.fromisoformat(row["newest"]).tzinfo is not None and row["age_s"] >= 0

    stale = run_cli("-p", str(extracted), "freshness", "--format", "json")
    assert stale.code == 1
    assert {r["relation"]: r["status"] for r in stale.json()}["shop.events"] == "error"  # JSON stays whole


def test_the_command_refuses_a_bad_threshold_with_exit_2(make_project: Callable[..., Path]) -> None:
    root = make_project(designs={**DESIGNS, "shop/ticks.yaml": DESIGNS["shop/ticks.yaml"].replace("2 hours", "soon")})
    done = run_cli("-p", str(root), "freshness")
    assert done.code == 2, done.output
    text = " ".join(done.stderr.split())
    assert text.startswith('Error: schemas/shop/ticks.yaml:8: freshness.error_after of "shop.ticks": "soon" is not')
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_timestamp_cursors_are_read_as_utc_and_date_cursors_from_midnight(make_project: Callable[..., Path]) -> None:
    designs = {
        "shop/visits.yaml": """\
name: shop.visits
columns:
  - {name: id, type: bigint, not_null: true}
  - {name: seen_at, type: timestamp}
extract: {incremental: {cursor: seen_at}}
freshness: {error_after: 1 hour}
""",
        "shop/days.yaml": """\
name: shop.days
columns:
  - {name: id, type: bigint, not_null: true}
  - {name: day, type: date}
extract: {incremental: {cursor: day}}
freshness: {error_after: 1 day}
""",
    }
    root = make_project(designs=designs)
    with sqlite3.connect(root / "upstream.db") as con:
        con.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, seen_at TIMESTAMP)")
        con.executemany("INSERT INTO visits VALUES (?, ?)", [(1, "2026-03-01 12:00:00.5"), (2, None)])
        con.execute("CREATE TABLE days (id INTEGER PRIMARY KEY, day DATE)")
        con.executemany("INSERT INTO days VALUES (?, ?)", [(1, "2026-02-28"), (2, "2026-03-01")])
    extract(root, "shop.visits", "shop.days")
    now = datetime(2026, 3, 1, 13, 0, 0, 500000, tzinfo=UTC)
    rows = rows_of(root, "shop.visits", "shop.days", now=now)
    visits, days = rows["shop.visits"], rows["shop.days"]
    assert (visits.measure, visits.newest, visits.status) == (
        "cursor",
        datetime(2026, 3, 1, 12, 0, 0, 500000, UTC),
        "ok",
    )
    assert (days.measure, days.newest, days.age) == (
        "cursor",
        datetime(2026, 3, 1, tzinfo=UTC),
        now - datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert rows_of(root, "shop.visits", now=now + timedelta(microseconds=1))["shop.visits"].status == "error"
