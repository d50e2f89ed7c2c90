"""Locks a pipeline run holds: its pipeline and every environment it writes.

They live in the tracking store, so a scheduled run, a manual ``pipeline run`` and runs on
other machines sharing a PostgreSQL store all see them. A heartbeat keeps them fresh; a
holder that dies stops heart-beating and its locks are taken over.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.config.pipelines import PipelineConfig
from conveyor.errors import UserError
from conveyor.tracking.heartbeat import Heartbeat
from conveyor.tracking.store import TrackingStore

TTL_S = 60.0


def lock_names(pipeline: str, config: PipelineConfig) -> list[str]:
    """The pipeline's lock and one per environment it writes."""
    envs = config.environments
    return [f"pipeline:{pipeline}"] + [f"environment:{e}" for e in (envs.primary, envs.secondary, envs.scratch) if e]


@contextmanager
def hold(store: TrackingStore, names: list[str], run_id: str) -> Iterator[None]:
    """Hold every lock for the duration; a busy one is a user error naming its holder."""
    holder = f"{run_id}@{socket.gethostname()}:{os.getpid()}"
    taken: list[str] = []
    try:
        for name in names:
            if not store.acquire_lock(name, holder, ttl_s=TTL_S):
                current = store.lock_holder(name)
                raise UserError(
                    f"{name.replace(':', ' ')} is busy: another run holds it ({current.holder if current else '?'}).",
                    hint="Wait for that run to finish; runs of one pipeline or environment never overlap.",
                )
            taken.append(name)
        with _heartbeat(store, taken, holder):
            yield
    finally:
        for name in taken:
            store.release_lock(name, holder)


def _heartbeat(store: TrackingStore, names: list[str], holder: str) -> Heartbeat:
    def beat() -> None:
        for name in names:
            store.refresh_lock(name, holder, ttl_s=TTL_S)

    return Heartbeat(beat, TTL_S / 3, name="lock-heartbeat")
