"""Source freshness: how old each source table's newest data is (``conveyor freshness``).

A design's ``freshness: {warn_after, error_after, measure}`` says how old its data may be.
The age is measured one of two ways:

- ``cursor`` (the default): now minus the newest value of the incremental cursor in the lake,
  read from the newest committed manifest of the relation (its watermark is the largest cursor
  value the lake holds). It tells stale *upstream* data apart from a stale extract. A table
  without an incremental cursor, with a cursor that is not a time (an integer id), or whose lake
  holds no cursor value yet (an empty table) is measured on its extracts instead, and says so.
  A ``timestamp`` cursor (no zone) is read as UTC; a ``date`` cursor as midnight UTC of its day.
- ``extract``: now minus when the last successful extract started (the tracking store's
  extract state; the newest committed manifest when the store has no record of it).

The status is ``error`` when the age is more than ``error_after``, else ``warn`` when it is
more than ``warn_after``, else ``ok``; ``unknown`` when the table was never extracted.
Nothing here reads upstream: only the lake and the tracking store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from conveyor.design.durations import describe, parse_duration
from conveyor.design.tests import Freshness
from conveyor.design.types import parse_type
from conveyor.errors import UserError
from conveyor.extract.incremental import decode
from conveyor.lake.lake import Lake
from conveyor.lake.manifest import Manifest
from conveyor.project import Project, Relation
from conveyor.tracking.models import ExtractStateRow
from conveyor.tracking.store import TrackingStore

Status = Literal["ok", "warn", "error", "unknown"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "error", "unknown")


@dataclass(frozen=True)
class FreshnessRow:
    """The freshness of one source table."""

    relation: str
    source: str
    measure: Literal["cursor", "extract"]
    """What the age was measured on (``extract`` also when ``cursor`` was asked but could not be used)."""
    newest: datetime | None
    """The newest cursor value (``cursor``) or when the last successful extract started (``extract``)."""
    age: timedelta | None
    warn_after: str | None
    error_after: str | None
    status: Status
    cursor: str | None = None
    note: str | None = None
    """Why the measure differs from the one asked for, or why the status is unknown."""

    @property
    def age_s(self) -> float | None:
        return None if self.age is None else self.age.total_seconds()

    @property
    def age_text(self) -> str:
        return "" if self.age is None else describe(self.age)

    def to_json(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "source": self.source,
            "measure": self.measure,
            "cursor": self.cursor,
            "newest": self.newest.isoformat() if self.newest else None,
            "age_s": self.age_s,
            "warn_after": self.warn_after,
            "error_after": self.error_after,
            "status": self.status,
            "note": self.note,
        }

    @property
    def event_status(self) -> str:
        """Its tracking-store event in a pipeline's ``freshness`` step: ``succeeded`` (ok), ``warned``
        (warn, or unknown with a threshold to meet) or ``failed`` (error)."""
        if self.status == "error":
            return "failed"
        expected = self.warn_after is not None or self.error_after is not None
        return "warned" if self.status == "warn" or (self.status == "unknown" and expected) else "succeeded"

    def detail(self) -> dict[str, Any]:
        """What a tracking-store event keeps of it."""
        return {key: value for key, value in self.to_json().items() if key not in ("relation", "source")}

    def describe(self) -> str:
        """One line: ``shop.orders is 2 d 3 h old (cursor ordered_at), more than error_after 1 day``."""
        if self.age is None:
            return f"{self.relation}: {self.note or 'never extracted'}"
        on = f"cursor {self.cursor}" if self.measure == "cursor" else "last extract"
        text = f"{self.relation} is {self.age_text} old ({on})"
        if self.status == "error":
            return f"{text}, more than error_after {self.error_after}"
        if self.status == "warn":
            return f"{text}, more than warn_after {self.warn_after}"
        return text


def too_old(rows: Iterable[FreshnessRow]) -> str | None:
    """What is wrong when any of ``rows`` is at ``error`` (``"1 source table is older than ..."``), else None."""
    stale = [row for row in rows if row.status == "error"]
    if not stale:
        return None
    count = f"{len(stale)} source table{'s are' if len(stale) > 1 else ' is'}"
    return f"{count} older than error_after: {'; '.join(row.describe() for row in stale)}"


def thresholds(relation: Relation) -> tuple[timedelta | None, timedelta | None]:
    """``(warn_after, error_after)`` of a design, parsed.

    Raises:
        UserError: a threshold is not a duration (at its file:line).
    """
    settings = relation.design.freshness or Freshness()
    found: list[timedelta | None] = []
    for key in ("warn_after", "error_after"):
        text = getattr(settings, key)
        try:
            found.append(None if text is None else parse_duration(text))
        except ValueError as exc:
            raise UserError(
                f'freshness.{key} of "{relation.name}": {exc}.', location=relation.location("freshness", key)
            ) from None
    return found[0], found[1]


def status_of(age: timedelta | None, warn: timedelta | None, error: timedelta | None) -> Status:
    """``error`` past ``error``, else ``warn`` past ``warn``, else ``ok``; ``unknown`` without an age."""
    if age is None:
        return "unknown"
    if error is not None and age > error:
        return "error"
    if warn is not None and age > warn:
        return "warn"
    return "ok"


def measure(
    project: Project, relations: Iterable[Relation], tracking: TrackingStore, *, now: datetime | None = None
) -> list[FreshnessRow]:
    """The freshness of every source table among ``relations`` (others are passed over), in order.

    ``now`` (time-zone aware; default: the current time) is what ages are measured against.

    Raises:
        UserError: a design's threshold is not a duration, or ``now`` has no time zone.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise UserError(f"now ({now.isoformat()}) has no time zone; give an aware datetime.")
    sources = [r for r in relations if r.kind == "source" and r.source is not None]
    limits = {r.name: thresholds(r) for r in sources}  # every bad duration fails before anything is read
    lake = Lake(project.lake_location)
    states = {(s.source, s.table_name): s for s in tracking.extract_state()} if sources else {}  # one query for all
    return [_one(project, relation, lake, tracking, states, now, *limits[relation.name]) for relation in sources]


def _one(
    project: Project,
    relation: Relation,
    lake: Lake,
    tracking: TrackingStore,
    states: dict[tuple[str, str], ExtractStateRow],
    now: datetime,
    warn: timedelta | None,
    error: timedelta | None,
) -> FreshnessRow:
    settings = relation.design.freshness or Freshness()
    assert relation.source is not None
    incremental = relation.design.extract.incremental
    cursor = incremental.cursor if incremental else None
    latest = lake.latest(relation.source, relation.name, legacy=project.lake_table(relation))
    extracted = _last_extract(tracking, states.get((relation.source, relation.name)), latest)
    base = FreshnessRow(
        relation.name, relation.source, "extract", None, None, settings.warn_after, settings.error_after, "unknown"
    )
    if extracted is None:
        return replace(base, measure=settings.measure if cursor else "extract", cursor=cursor, note="never extracted")
    note = None
    if settings.measure == "cursor" and cursor is not None:
        newest, note = _newest_cursor(latest, cursor)
        if newest is not None:
            age = now - newest
            return replace(
                base, measure="cursor", newest=newest, age=age, status=status_of(age, warn, error), cursor=cursor
            )
    elif settings.measure == "cursor" and relation.design.freshness is not None:  # asked for, not the default
        note = "no incremental cursor: measured on the last extract"
    age = now - extracted
    return replace(base, newest=extracted, age=age, status=status_of(age, warn, error), note=note)


def _last_extract(tracking: TrackingStore, state: ExtractStateRow | None, latest: Manifest | None) -> datetime | None:
    """When the last successful extract of a relation started: the tracking store, else the lake."""
    if state is not None and state.last_success_extract_id:
        found = tracking.get_extract(state.last_success_extract_id)
        if found is not None:
            return _aware(found.started_at)
    return _aware(datetime.fromisoformat(latest.started_at)) if latest is not None else None


def _newest_cursor(latest: Manifest | None, cursor: str) -> tuple[datetime | None, str | None]:
    """The newest value of ``cursor`` in the lake as a time, or None and why not."""
    mark = latest.watermark if latest is not None else None
    if not mark or mark.get("cursor") != cursor or mark.get("value") is None:
        return None, f'the lake holds no value of the cursor "{cursor}" yet: measured on the last extract'
    sql_type = parse_type(str(mark.get("type")))
    value = decode(mark["value"], sql_type)
    if isinstance(value, datetime):
        return _aware(value), None
    if isinstance(value, date):
        return datetime.combine(value, time(0), UTC), None
    return None, f'the cursor "{cursor}" is {sql_type}, not a time: measured on the last extract'


def _aware(value: datetime) -> datetime:
    """A time without a zone is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
