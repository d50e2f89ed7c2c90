"""Schedules, pure and fast: nightly and cron across DST in two zones, once, manual, bad input."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor.config.schedule import parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def slots(schedule: str, start: str, end: str) -> list[str]:
    found = parse_schedule(schedule).slots_between(utc(start), utc(end))
    return [s.strftime("%Y-%m-%dT%H:%MZ") for s in found]


def local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


# -- nightly -------------------------------------------------------------------------------


def test_nightly_berlin_ordinary_days_follow_the_offset() -> None:
    # CET in winter (+01:00), CEST in summer (+02:00)
    assert slots("nightly at 02:30 Europe/Berlin", "2026-01-10T12:00Z", "2026-01-12T12:00Z") == [
        "2026-01-11T01:30Z",
        "2026-01-12T01:30Z",
    ]
    assert slots("nightly at 02:30 Europe/Berlin", "2026-06-14T12:00Z", "2026-06-16T12:00Z") == [
        "2026-06-15T00:30Z",
        "2026-06-16T00:30Z",
    ]


def test_nightly_berlin_spring_forward_runs_just_after_the_gap() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist; it runs at 03:30
    found = parse_schedule("nightly at 02:30 Europe/Berlin").slots_between(
        utc("2026-03-27T12:00Z"), utc("2026-03-30T12:00Z")
    )
    assert [local(s, BERLIN) for s in found] == [
        "2026-03-28 02:30 CET",
        "2026-03-29 03:30 CEST",
        "2026-03-30 02:30 CEST",
    ]
    assert found[1] == utc("2026-03-29T01:30Z")


def test_nightly_berlin_fall_back_runs_once_at_the_first_0230() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice
    schedule = parse_schedule("nightly at 02:30 Europe/Berlin")
    found = schedule.slots_between(utc("2026-10-24T12:00Z"), utc("2026-10-26T12:00Z"))
    assert [local(s, BERLIN) for s in found] == ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]
    # standing between the two 02:30s, the next run is tomorrow's
    assert schedule.next_after(utc("2026-10-25T00:30Z")) == utc("2026-10-26T01:30Z")
    assert schedule.next_after(utc("2026-10-25T01:29:59Z")) == utc("2026-10-26T01:30Z")


def test_nightly_one_run_per_local_day_over_a_year() -> None:
    for zone, schedule in ((BERLIN, "nightly at 02:30 Europe/Berlin"), (NEW_YORK, "nightly at 01:30 America/New_York")):
        found = parse_schedule(schedule).slots_between(utc("2025-12-31T12:00Z"), utc("2026-12-31T12:00Z"))
        days = [s.astimezone(zone).date() for s in found]
        assert len(days) == len(set(days)) == 365
        assert all(b - a == timedelta(days=1) for a, b in itertools.pairwise(days))


def test_nightly_new_york_spring_forward() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT
    found = parse_schedule("nightly at 02:30 America/New_York").slots_between(
        utc("2026-03-07T00:00Z"), utc("2026-03-10T00:00Z")
    )
    assert [local(s, NEW_YORK) for s in found] == [
        "2026-03-07 02:30 EST",
        "2026-03-08 03:30 EDT",
        "2026-03-09 02:30 EDT",
    ]


def test_nightly_new_york_fall_back() -> None:
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice
    schedule = parse_schedule("nightly at 01:30 America/New_York")
    found = schedule.slots_between(utc("2026-10-31T00:00Z"), utc("2026-11-03T00:00Z"))
    assert [local(s, NEW_YORK) for s in found] == [
        "2026-10-31 01:30 EDT",
        "2026-11-01 01:30 EDT",
        "2026-11-02 01:30 EST",
    ]
    assert schedule.next_after(utc("2026-11-01T05:30Z")) == utc("2026-11-02T06:30Z")


def test_nightly_without_zone_is_utc_and_daily_is_a_synonym() -> None:
    assert slots("nightly at 2:05", "2026-03-28T00:00Z", "2026-03-30T00:00Z") == [
        "2026-03-28T02:05Z",
        "2026-03-29T02:05Z",
    ]
    assert slots("daily at 23:59 UTC", "2026-03-28T00:00Z", "2026-03-29T00:00Z") == ["2026-03-28T23:59Z"]


def test_next_after_is_strictly_after() -> None:
    schedule = parse_schedule("nightly at 02:30 Europe/Berlin")
    assert schedule.next_after(utc("2026-06-15T00:30Z")) == utc("2026-06-16T00:30Z")
    assert schedule.next_after(utc("2026-06-15T00:29:59.999999Z")) == utc("2026-06-15T00:30Z")


# -- cron ----------------------------------------------------------------------------------


def test_cron_in_a_zone_runs_a_repeated_wall_clock_time_once() -> None:
    assert slots("cron 30 2 * * * Europe/Berlin", "2026-10-23T12:00Z", "2026-10-26T12:00Z") == [
        "2026-10-24T00:30Z",
        "2026-10-25T00:30Z",  # the first 02:30; the second (01:30Z) does not run
        "2026-10-26T01:30Z",
    ]
    # hourly: 02:30 CEST runs, 02:30 CET (the repeat) does not, 03:30 CET does
    assert slots("cron 30 * * * * Europe/Berlin", "2026-10-24T23:00Z", "2026-10-25T03:00Z") == [
        "2026-10-24T23:30Z",
        "2026-10-25T00:30Z",
        "2026-10-25T02:30Z",
    ]
    # New York: the whole repeated 01:00-01:59 EST hour is skipped
    assert slots("cron */30 1 * * * America/New_York", "2026-11-01T04:00Z", "2026-11-01T08:00Z") == [
        "2026-11-01T05:00Z",
        "2026-11-01T05:30Z",
    ]


def test_cron_spring_forward_runs_once_that_day() -> None:
    for schedule, zone, day in (
        ("cron 30 2 * * * Europe/Berlin", BERLIN, "2026-03-29"),
        ("cron 30 2 * * * America/New_York", NEW_YORK, "2026-03-08"),
    ):
        found = parse_schedule(schedule).slots_between(utc("2026-03-01T00:00Z"), utc("2026-04-01T00:00Z"))
        on_day = [s for s in found if s.astimezone(zone).date().isoformat() == day]
        assert len(on_day) == 1, schedule
        assert on_day[0].astimezone(zone).hour == 3  # after the gap
    # hourly across the gap: nothing is doubled, nothing is invented
    assert slots("cron 30 * * * * Europe/Berlin", "2026-03-28T23:00Z", "2026-03-29T03:00Z") == [
        "2026-03-28T23:30Z",
        "2026-03-29T00:30Z",
        "2026-03-29T01:30Z",
        "2026-03-29T02:30Z",
    ]


def test_bare_cron_is_utc_and_weekdays_work() -> None:
    assert slots("30 2 * * *", "2026-03-28T00:00Z", "2026-03-30T00:00Z") == ["2026-03-28T02:30Z", "2026-03-29T02:30Z"]
    assert slots("cron 30 2 * * * UTC", "2026-03-28T00:00Z", "2026-03-29T00:00Z") == ["2026-03-28T02:30Z"]
    # Friday 2026-11-20 after 18:00 Berlin: the next weekday run is Monday
    assert slots("cron 0 18 * * 1-5 Europe/Berlin", "2026-11-20T17:00Z", "2026-11-24T00:00Z") == ["2026-11-23T17:00Z"]


# -- once and manual -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shorthand", "five_fields"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("cron @HOURLY Europe/Berlin", "cron 0 * * * * Europe/Berlin"),
    ],
)
def test_cron_shorthands_mean_their_five_fields(shorthand: str, five_fields: str) -> None:
    # across Berlin's spring-forward change; a year for the rarer ones
    window = ("2026-03-27T00:00Z", "2026-04-01T00:00Z" if "hourly" in shorthand.lower() else "2027-01-02T00:00Z")
    assert slots(shorthand, *window) == slots(five_fields, *window)
    assert slots(shorthand, *window)


def test_once_runs_once() -> None:
    schedule = parse_schedule("once at 2026-12-01T02:00:00+01:00")
    moment = utc("2026-12-01T01:00Z")
    assert schedule.kind == "once"
    assert schedule.next_after(utc("2026-11-30T00:00Z")) == moment
    assert schedule.next_after(moment) is None
    assert schedule.slots_between(utc("2026-01-01T00:00Z"), utc("2027-01-01T00:00Z")) == [moment]


def test_manual_never_runs_on_its_own() -> None:
    schedule = parse_schedule("manual")
    assert schedule.next_after(utc("2026-01-01T00:00Z")) is None
    assert schedule.slots_between(utc("2026-01-01T00:00Z"), utc("2030-01-01T00:00Z")) == []


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nightly at 25:00", '"25:00" is not a time of day'),
        ("nightly at 2:60 Europe/Berlin", '"2:60" is not a time of day'),
        ("nightly at 02:30 Mars/Olympus_Mons", '"Mars/Olympus_Mons" is not a time zone'),
        ("cron 30 2 * * * Europe/Berlinn", '"Europe/Berlinn" is not a time zone'),
        ("cron 61 * * * *", '"61 * * * *" is not a valid cron expression'),
        ("once at tomorrow", '"tomorrow" is not an ISO-8601 time'),
        ("once at 2026-12-01T02:00:00", "needs a UTC offset"),
        ("every day at noon", "is not a schedule"),
        ("", "is not a schedule"),
    ],
)
def test_invalid_schedules_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(text)
    assert message in str(info.value)
