"""A thread that calls a function every few seconds until stopped or told the work is over."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("conveyor.tracking")


class Heartbeat:
    """Calls ``beat`` every ``every_s`` seconds from a daemon thread until stopped.

    A beat that raises is logged and the next one is tried: a store that is briefly
    unreachable must not end the work the heartbeat vouches for. ``beat`` returning ``False``
    ends the heartbeat (what it vouched for is gone).
    """

    def __init__(self, beat: Callable[[], object], every_s: float, name: str = "heartbeat"):
        self._beat = beat
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop beating; waits for a beat in progress (unless called from the beat itself)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                if self._beat() is False:
                    return
            except Exception as exc:  # logged; the next beat may get through
                log.warning("heartbeat %s failed: %s", self._thread.name, exc)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
