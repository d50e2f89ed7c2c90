"""Crash points: a test-only hook that kills this process at a named place.

``crash_point("lake.manifest.after_rename")`` does nothing unless the environment variable
``CONVEYOR_CRASH_AT`` names that point. Then the process SIGKILLs itself at once: no
``finally``, no ``atexit``, no flush, exactly like a power cut or the OOM killer.
``CONVEYOR_CRASH_AT=name:N`` kills at the N-th time the point is reached (counted in this
process). The variable is read once, on the first call, so an unset variable costs one
comparison per call. The point names are listed in docs/reliability.md ("Crash points")
and exercised by tests/faults/test_crash_points.py.
"""

from __future__ import annotations

import os
import signal

_read = False
_target: tuple[str, int] | None = None
_seen = 0


def _parse(text: str) -> tuple[str, int] | None:
    """``name`` or ``name:N`` as (name, N); None when empty."""
    text = text.strip()
    if not text:
        return None
    name, _, nth = text.partition(":")
    return name, int(nth) if nth.strip().isdigit() else 1


def crash_point(name: str) -> None:
    """SIGKILL this process if ``CONVEYOR_CRASH_AT`` names this point (and its count is reached)."""
    global _read, _target, _seen
    if not _read:
        _target, _read = _parse(os.environ.get("CONVEYOR_CRASH_AT", "")), True
    if _target is None or name != _target[0]:
        return
    _seen += 1
    if _seen >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
