"""Typed rows read from the tracking store.

Every row is a frozen dataclass. Timestamps are timezone-aware UTC datetimes and the
JSON columns (``summary``, ``detail``) are parsed back into dicts; the store keeps them
as ISO-8601 text and JSON text so that SQLite and PostgreSQL hold identical values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

RUN_STATUSES = frozenset({"running", "succeeded", "failed", "cancelled", "abandoned"})
"""``abandoned``: the run's process died without recording its end (SIGKILL, out of memory, power cut)."""
EVENT_STATUSES = frozenset({"running", "succeeded", "failed", "skipped", "cancelled", "abandoned", "warned"})
"""``warned``: a data test of severity ``warn`` found failing rows (or a freshness check its warn age)."""
EXTRACT_STATUSES = frozenset({"running", "succeeded", "failed", "cancelled", "abandoned"})
"""``abandoned``: the extract's run died during it (the lake keeps whatever it committed)."""

_TIME_FIELDS = frozenset({"started_at", "finished_at", "last_success_at", "acquired_at", "heartbeat_at", "expires_at"})
_JSON_FIELDS = frozenset({"summary", "detail"})

RowT = TypeVar("RowT")


def format_ts(value: datetime) -> str:
    """Render an aware datetime as fixed-width ISO-8601 UTC text with microseconds.

    Raises:
        ValueError: ``value`` is naive; its zone would be a guess.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(value: str | None) -> datetime | None:
    """Parse text written by :func:`format_ts` (``None`` stays ``None``)."""
    return None if value is None else datetime.fromisoformat(value)


def _parse_json(value: str | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(value)


def row_from(cls: type[RowT], row: Mapping[str, Any]) -> RowT:
    """Build a row dataclass from a column mapping, converting timestamps and JSON."""
    values: dict[str, Any] = {}
    for field in fields(cls):  # type: ignore[arg-type]
        value = row[field.name]
        if field.name in _TIME_FIELDS:
            value = parse_ts(value)
        elif field.name in _JSON_FIELDS:
            value = _parse_json(value)
        values[field.name] = value
    return cls(**values)


def column_names(cls: type) -> tuple[str, ...]:
    """The table columns behind a row dataclass, in field order."""
    return tuple(field.name for field in fields(cls))


@dataclass(frozen=True)
class RunRow:
    """One Conveyor command or scheduled pipeline run."""

    run_id: str
    command: str
    project: str
    environment: str | None
    pipeline: str | None
    selection: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    summary: dict[str, Any] | None
    host: str
    pid: int
    username: str | None
    conveyor_version: str | None
    process_start: str | None = None
    """Which process ran it (boot id and start time), so a reused pid is not taken for it."""
    heartbeat_at: datetime | None = None
    """The last time the run's process said it was alive (every 30 s while it runs)."""


@dataclass(frozen=True)
class FinishedEvent:
    """An event recorded once it has finished (``RunHistory.record_events``)."""

    relation: str
    step: str
    status: str
    started_at: datetime
    finished_at: datetime
    rows: int | None = None
    bytes: int | None = None
    error: str | None = None
    detail: Mapping[str, Any] | None = None
    environment: str | None = None


@dataclass(frozen=True)
class EventRow:
    """One step (extract, load, build, check, publish, ...) of one relation in a run."""

    id: int
    run_id: str
    relation: str
    step: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rows: int | None
    bytes: int | None
    error: str | None
    detail: dict[str, Any] | None
    environment: str | None = None
    """The environment the step ran in (a pipeline run loads one or two)."""


@dataclass(frozen=True)
class ExtractRow:
    """One attempt at extracting one relation (``table_name``) from its upstream table."""

    extract_id: str
    run_id: str
    source: str
    table_name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rows: int | None
    bytes: int | None
    watermark_low: str | None
    watermark_high: str | None
    manifest_path: str | None
    error: str | None
    upstream_table: str | None = None
    """The upstream ``schema.table`` read; None on rows from before relations had their own."""


@dataclass(frozen=True)
class ExtractStateRow:
    """The state of one (source, relation): its latest attempt and its committed watermark.

    ``table_name`` is the relation (the design's name). Rows written before migration 0004
    have no ``upstream_table`` and are keyed by the upstream table instead; they are kept
    for history and never used for a watermark.

    ``status``, ``rows``, ``bytes``, ``started_at``, ``finished_at`` and ``error``
    describe the latest attempt; ``last_success_*`` and ``watermark`` only move when
    an attempt succeeds.
    """

    source: str
    table_name: str
    status: str
    last_extract_id: str
    last_run_id: str | None
    last_success_extract_id: str | None
    last_success_at: datetime | None
    watermark: str | None
    rows: int | None
    bytes: int | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    upstream_table: str | None = None
    """The upstream ``schema.table`` the relation reads; None on rows from before migration 0004."""


@dataclass(frozen=True)
class LockRow:
    """A named lock and who holds it."""

    name: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the holder stopped heart-beating before ``now`` (default: the current time)."""
        return self.expires_at <= (now or datetime.now(UTC))
