"""A relation's events across runs (``relation_events``) and each relation's newest event
(``latest_events``), on both backends, against the same events read run by run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from conveyor.tracking.models import EventRow, FinishedEvent
from conveyor.tracking.store import TrackingStore

RELATIONS = ("s.a", "s.b", "t.c", "<script>x</script>")
STEPS = ("extract", "load", "build", "test")


def fill(store: TrackingStore, seed: int) -> list[EventRow]:
    """Generated runs of random events, some starting at the same microsecond; every event recorded."""
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    everything: list[EventRow] = []
    for _ in range(12):
        run = store.start_run("run", project="p")
        events = []
        for _ in range(rng.randint(0, 8)):
            at = base + timedelta(seconds=rng.randint(0, 40))  # collisions on purpose
            events.append(
                FinishedEvent(
                    rng.choice(RELATIONS), rng.choice(STEPS), rng.choice(("succeeded", "failed", "skipped")),
                    at, at + timedelta(seconds=rng.random()), rows=rng.randint(0, 9),
                )
            )  # fmt: skip
        store.record_events(run, events)
        store.finish_run(run, "succeeded")
        everything += store.run_events(run)
    return everything


def newest_first(events: list[EventRow]) -> list[EventRow]:
    return sorted(events, key=lambda e: (e.started_at, e.id), reverse=True)


def test_relation_events_and_latest_events(store: TrackingStore) -> None:
    everything = fill(store, 3)
    for relation in RELATIONS:
        mine = newest_first([e for e in everything if e.relation == relation])
        assert store.relation_events(relation, limit=1000) == mine
        assert store.relation_events(relation, limit=3) == mine[:3]
        builds = [e for e in mine if e.step in ("build", "load")]
        assert store.relation_events(relation, limit=1000, steps=("build", "load")) == builds
    latest = store.latest_events([*RELATIONS, "nowhere.x", "s.a"])
    assert set(latest) == {r for r in RELATIONS if any(e.relation == r for e in everything)}
    for relation, event in latest.items():
        assert event == newest_first([e for e in everything if e.relation == relation])[0]
    assert store.latest_events([]) == {} and store.relation_events("nowhere.x") == []
