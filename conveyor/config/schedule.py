"""Schedules: when a pipeline runs.

- ``nightly at 02:30 Europe/Berlin`` runs once per local day at that wall-clock time. On
  the day clocks spring forward past it, it runs at the first instant after the gap (03:30
  for 02:30 in Berlin); on the day they fall back, it runs once, at the first 02:30.
- ``cron <expr> [Zone]`` (or a bare 5-field expression, taken as UTC) follows croniter,
  except that a wall-clock time repeated by a fall-back change runs only once. cron's
  shorthands work too: ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly``,
  ``@yearly`` (``@annually``), each optionally followed by a zone.
- ``once at <ISO-8601 time with offset>`` runs once; afterwards the pipeline is done.
- ``manual`` never runs on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

_NIGHTLY = re.compile(r"^(?:nightly|daily) at (\d{1,2}):(\d{2})(?:\s+(\S+))?$", re.I)
_ONCE = re.compile(r"^once at (.+)$", re.I)
_CRON = re.compile(r"^(?:cron\s+)?((?:\S+\s+){4}\S+|@[a-z]+)(?:\s+([A-Za-z_]+/[A-Za-z_/+-]+|UTC))?$", re.I)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``next_after`` is the only thing the scheduler needs."""

    text: str
    kind: str  # nightly | cron | once | manual
    zone: ZoneInfo
    at: time | None = None
    cron: str | None = None
    moment: datetime | None = None

    def next_after(self, after: datetime) -> datetime | None:
        """The first scheduled instant strictly after ``after`` (UTC), or None."""
        if self.kind == "manual":
            return None
        if self.kind == "once":
            assert self.moment is not None
            return self.moment if self.moment > after else None
        if self.kind == "nightly":
            return self._next_nightly(after)
        return self._next_cron(after)

    def slots_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every scheduled instant in (start, end]."""
        return list(self.iter_between(start, end))

    def iter_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every scheduled instant in (start, end], one at a time (a minutely schedule down for
        a year has half a million: a caller can stop part way)."""
        current = start
        while (nxt := self.next_after(current)) is not None and nxt <= end:
            yield nxt
            current = nxt

    def _next_nightly(self, after: datetime) -> datetime:
        assert self.at is not None
        local_day = after.astimezone(self.zone).date() - timedelta(days=1)
        while True:
            candidate = _wall_clock(local_day, self.at, self.zone)
            if candidate > after:
                return candidate
            local_day += timedelta(days=1)

    def _next_cron(self, after: datetime) -> datetime:
        assert self.cron is not None
        iterator = croniter(self.cron, after.astimezone(self.zone))
        while True:
            candidate: datetime = iterator.get_next(datetime)
            if not _repeated_wall_clock(candidate, self.zone):
                return candidate.astimezone(UTC)


def _wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant a local wall-clock time names; times in a spring-forward gap move past it."""
    # fold=0 picks the first of two ambiguous instants; a time inside a spring-forward gap is
    # read with the offset before the change, which lands just after the gap
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _repeated_wall_clock(candidate: datetime, zone: ZoneInfo) -> bool:
    """True for the second occurrence of a wall-clock time after clocks fall back."""
    earlier = (candidate.astimezone(UTC) - timedelta(hours=1)).astimezone(zone)
    return earlier.replace(tzinfo=None) == candidate.astimezone(zone).replace(tzinfo=None)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'"{name}" is not a time zone; use a name like Europe/Berlin or UTC') from None


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule string; raises ``ValueError`` with a readable message."""
    value = text.strip()
    if value.lower() == "manual":
        return Schedule(value, "manual", ZoneInfo("UTC"))
    if match := _NIGHTLY.match(value):
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour > 23 or minute > 59:
            raise ValueError(f'"{hour}:{minute:02d}" is not a time of day')
        return Schedule(value, "nightly", _zone(match.group(3)), at=time(hour, minute))
    if match := _ONCE.match(value):
        try:
            moment = datetime.fromisoformat(match.group(1).strip())
        except ValueError:
            raise ValueError(f'"{match.group(1)}" is not an ISO-8601 time') from None
        if moment.tzinfo is None:
            raise ValueError(f'"{match.group(1)}" needs a UTC offset, e.g. 2026-12-01T02:00:00+01:00')
        return Schedule(value, "once", ZoneInfo("UTC"), moment=moment.astimezone(UTC))
    if match := _CRON.match(value):
        expression = match.group(1)
        if expression.startswith("@"):
            expression = expression.lower()
        if not croniter.is_valid(expression):
            raise ValueError(f'"{expression}" is not a valid cron expression')
        return Schedule(value, "cron", _zone(match.group(2)), cron=expression)
    raise ValueError(
        f'"{text}" is not a schedule; write "nightly at 02:30 Europe/Berlin", a cron expression '
        '(5 fields, or @hourly, @daily, @weekly, @monthly), "once at 2026-12-01T02:00:00+01:00" or "manual"'
    )
