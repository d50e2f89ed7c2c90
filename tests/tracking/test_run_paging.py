"""Keyset paging of the run list (``list_runs(before=...)``) and its day bounds, on generated history:
pages put together are the whole list, in order, even when many runs started at the same microsecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from testkit.history import generate_runs

from conveyor.errors import UserError
from conveyor.tracking.store import TrackingStore


@pytest.mark.parametrize(("every", "page"), [(timedelta(minutes=3), 7), (timedelta(0), 4), (timedelta(0), 1)])
def test_pages_make_the_whole_list(tmp_path: Path, every: timedelta, page: int) -> None:
    path = tmp_path / "t.db"
    with TrackingStore.open(str(path)) as store:
        generate_runs(path, 60, every=every, jitter=False, events_per_run=2)
        everything = [r.run_id for r in store.list_runs(limit=1000)]
        assert len(everything) == 60
        seen: list[str] = []
        before = None
        while True:
            found = [r.run_id for r in store.list_runs(limit=page, before=before)]
            if not found:
                break
            seen += found
            before = found[-1]
        assert seen == everything
        failed = [r.run_id for r in store.list_runs(limit=1000, status="failed")]
        if failed:
            assert [r.run_id for r in store.list_runs(limit=1000, status="failed", before=failed[0])] == failed[1:]


def test_day_bounds_and_unknown_anchor(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    newest = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
    with TrackingStore.open(str(path)) as store:
        generate_runs(path, 50, newest=newest, every=timedelta(minutes=20), jitter=False)
        day = datetime(2026, 3, 1, tzinfo=UTC)
        found = store.list_runs(limit=100, started_from=day, started_until=day + timedelta(days=1))
        assert len(found) == 48  # 00:30 and 00:10 are on the 2nd; 23:50 back to 08:10 on the 1st
        assert all(r.started_at.date() == day.date() for r in found)
        with pytest.raises(UserError, match="no run"):
            store.list_runs(before="20260101T000000Z-000000")


def test_paging_and_filters_on_each_backend(store: TrackingStore) -> None:
    """Through the store's API, on SQLite and PostgreSQL: pages of filtered runs add up to the filtered list."""
    for i in range(12):
        run_id = store.start_run("run", project="p", environment="dev" if i % 3 else None)
        if i % 3 == 0:  # the environment only in a step, as a pipeline's second environment is
            now = datetime.now(UTC)
            store.record_event(run_id, "a.b", "load", "succeeded", started_at=now, finished_at=now, environment="dev")
        store.finish_run(run_id, "failed" if i % 2 else "succeeded")
    for filters in ({}, {"environment": "dev"}, {"status": "failed"}, {"environment": "dev", "status": "succeeded"}):
        everything = [r.run_id for r in store.list_runs(limit=100, **filters)]  # type: ignore[arg-type]
        assert everything and len(everything) == len(set(everything))
        seen: list[str] = []
        before = None
        while page := [r.run_id for r in store.list_runs(limit=5, before=before, **filters)]:  # type: ignore[arg-type]
            seen += page
            before = page[-1]
        assert seen == everything, filters
    assert len(store.list_runs(limit=100, environment="dev")) == 12
