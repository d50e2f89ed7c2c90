"""A build's test events reach the tracking store in batches, in order, and all of them by flush()."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from conveyor.quality import run as quality_run
from conveyor.tracking.models import FinishedEvent
from conveyor.tracking.store import TrackingStore


def _events(names: list[str]) -> list[FinishedEvent]:
    now = datetime.now(UTC)
    return [FinishedEvent(name, "test", "succeeded", now, now, detail={"test": name}) for name in names]


def _batch(store: TrackingStore, run_id: str, **kwargs: Any) -> quality_run.TestEvents:
    ctx: Any = SimpleNamespace(tracking=store, run_id=run_id)  # TestEvents needs only these two
    return quality_run.TestEvents(ctx, **kwargs)


def test_events_are_written_every_size_events_and_the_rest_at_flush(tmp_path: Path) -> None:
    store = TrackingStore.open(f"sqlite:///{tmp_path / 'tracking.db'}")
    run_id = store.start_run("load", project="p")
    batch = _batch(store, run_id, size=3, seconds=3600)
    written = lambda: [e.relation for e in store.run_events(run_id)]  # noqa: E731
    batch.add(_events(["a", "b"]))
    assert written() == []
    batch.add(_events(["c", "d"]))
    assert written() == ["a", "b", "c", "d"]
    batch.add(_events(["e"]))
    assert written() == ["a", "b", "c", "d"]
    batch.flush()
    batch.flush()
    assert written() == ["a", "b", "c", "d", "e"]
    store.close()


def test_events_older_than_seconds_are_written_with_the_next(tmp_path: Path) -> None:
    store = TrackingStore.open(f"sqlite:///{tmp_path / 'tracking.db'}")
    run_id = store.start_run("load", project="p")
    batch = _batch(store, run_id, size=1000, seconds=0)
    batch.add(_events(["a"]))
    assert [e.relation for e in store.run_events(run_id)] == ["a"]
    store.close()
