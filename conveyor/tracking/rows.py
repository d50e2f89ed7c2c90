"""Helpers the parts of the tracking store share: timestamps, JSON, status checks, filters, column lists."""

from __future__ import annotations

import getpass
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from conveyor.tracking.models import (
    EventRow,
    ExtractRow,
    ExtractStateRow,
    LockRow,
    RunRow,
    column_names,
)


def now_utc() -> datetime:
    return datetime.now(UTC)


def to_json(value: Mapping[str, Any] | None) -> str | None:
    # default=str so paths, decimals and datetimes in a summary never make a run fail
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


# -- migrations ----------------------------------------------------------------------------


def current_user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


# -- the store -----------------------------------------------------------------------------


RUN_COLUMNS = ", ".join(column_names(RunRow))
EVENT_COLUMNS = ", ".join(column_names(EventRow))
EXTRACT_COLUMNS = ", ".join(column_names(ExtractRow))
STATE_COLUMNS = ", ".join(column_names(ExtractStateRow))
LOCK_COLUMNS = ", ".join(column_names(LockRow))


def check_status(status: str, allowed: frozenset[str], what: str) -> None:
    if status not in allowed:
        raise ValueError(f"{status!r} is not a final {what} status; use one of {sorted(allowed)}")


def seconds_between(started: datetime | None, finished: datetime) -> float | None:
    return None if started is None else (finished - started).total_seconds()


def where_clause(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A ``WHERE ... `` clause (with trailing space) and its parameters for the non-None filters."""
    given = {column: value for column, value in filters.items() if value is not None}
    if not given:
        return "", []
    return "WHERE " + " AND ".join(f"{column} = ?" for column in given) + " ", list(given.values())
