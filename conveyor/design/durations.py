"""Durations in designs, such as a freshness threshold: ``"12 hours"``, ``"1 day"``, ``"90 min"``.

A duration is a positive number followed by a unit; ``"1 day 12 hours"`` adds its parts.
Units: seconds (``s``, ``sec``, ``second``), minutes (``m``, ``min``, ``minute``), hours
(``h``, ``hr``, ``hour``), days (``d``, ``day``) and weeks (``w``, ``week``), singular or
plural, in any case.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, str] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "seconds"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "minutes"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hours"),
    **dict.fromkeys(("d", "day", "days"), "days"),
    **dict.fromkeys(("w", "week", "weeks"), "weeks"),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.I)
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[a-z]+\s*)+$", re.I)

EXAMPLES = '"30 minutes", "12 hours", "1 day" or "1 day 12 hours"'


def parse_duration(text: str) -> timedelta:
    """``"12 hours"`` -> ``timedelta(hours=12)``.

    Raises:
        ValueError: ``text`` is not a duration (the message says what one looks like).
    """
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise ValueError(f'"{text}" is not a duration; write it like {EXAMPLES}')
    total = timedelta()
    for amount, unit in _PART.findall(text):
        name = _UNITS.get(unit.lower())
        if name is None:
            raise ValueError(f'"{text}" is not a duration: "{unit}" is not a unit; write it like {EXAMPLES}')
        total += timedelta(**{name: float(amount)})
    if total <= timedelta():
        raise ValueError(f'"{text}" is not a duration longer than zero; write it like {EXAMPLES}')
    return total


def describe(age: timedelta) -> str:
    """A short human form of a non-negative duration: ``"2 d 3 h"``, ``"4 h 12 min"``, ``"35 s"``."""
    seconds = int(age.total_seconds())
    if seconds < 0:
        return "-" + describe(-age)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
