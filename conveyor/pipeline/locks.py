"""Locks a pipeline run holds: its pipeline and every environment it writes.

They live in the tracking store, so a scheduled run, a manual ``pipeline run`` and runs on
other machines sharing a PostgreSQL store all see them. A heartbeat keeps them fresh; a
holder that dies stops heart-beating and its locks are taken over.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from conveyor.config.pipelines import PipelineConfig
from conveyor.errors import UserError
from conveyor.tracking.heartbeat import Heartbeat
from conveyor.tracking.host import host_id
from conveyor.tracking.store import TrackingStore

TTL_S = 60.0
POLL_S = 0.5
"""How often a scheduled run waiting for a busy lock tries again."""


def lock_names(pipeline: str, config: PipelineConfig) -> list[str]:
    """The pipeline's lock and one per environment it writes, environments in name order.

    Every run takes them in this order, without waiting, so of two runs that share
    environments the one that takes the first shared lock gets them all: they are never
    both refused, each holding one the other wants.
    """
    envs = config.environments
    wanted = sorted({e for e in (envs.primary, envs.secondary, envs.scratch) if e})
    return [f"pipeline:{pipeline}"] + [f"environment:{e}" for e in wanted]


@contextmanager
def hold(
    store: TrackingStore,
    names: list[str],
    run_id: str,
    *,
    wait_s: float = 0.0,
    waiting: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> Iterator[None]:
    """Hold every lock for the duration; one still busy after ``wait_s`` seconds is a user error naming its holder.

    A busy lock is waited for holding none (the ones taken are let go), so two runs that
    wait for each other's locks cannot block each other; ``waiting`` is told once. ``stop``
    (SIGTERM) ends the wait.
    """
    holder = f"{run_id}@{host_id()}:{os.getpid()}"
    taken: list[str] = []
    deadline = time.monotonic() + wait_s
    told = False
    try:
        while True:
            busy = _take_all(store, names, holder, taken)
            if busy is None:
                break
            current = store.lock_holder(busy)
            who = current.holder if current else "?"
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise UserError(
                    f"{busy.replace(':', ' ')} is busy: another run holds it ({who})"
                    + (
                        f" and did not let it go while this run waited for it ({wait_s:.0f} s at most)."
                        if wait_s
                        else "."
                    ),
                    hint="Wait for that run to finish; runs of one pipeline or environment never overlap.",
                )
            if waiting is not None and not told:
                waiting(f"waiting for {busy.replace(':', ' ')}, which another run holds ({who})")
                told = True
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        with _heartbeat(store, taken, holder):
            yield
    finally:
        for name in taken:
            store.release_lock(name, holder)


def _take_all(store: TrackingStore, names: list[str], holder: str, taken: list[str]) -> str | None:
    """Take every lock in order; on a busy one, let go of those taken and return its name."""
    for name in names:
        if not store.acquire_lock(name, holder, ttl_s=TTL_S):
            for held in taken:
                store.release_lock(held, holder)
            taken.clear()
            return name
        taken.append(name)
    return None


def _heartbeat(store: TrackingStore, names: list[str], holder: str) -> Heartbeat:
    def beat() -> None:
        for name in names:
            store.refresh_lock(name, holder, ttl_s=TTL_S)

    return Heartbeat(beat, TTL_S / 3, name="lock-heartbeat")
