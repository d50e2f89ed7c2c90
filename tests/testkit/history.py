"""Generated run history: thousands of finished runs with their events, written straight into a
SQLite tracking store (created and migrated by Conveyor first), for the dashboard's tests and
its benchmark (bench/ui). Deterministic for a seed."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

COMMANDS = ("run", "run", "load", "extract", "update")
PIPELINES = ("nightly", "hourly")
ENVIRONMENTS = ("dev", "prod")
RELATIONS = ("shop.customers", "shop.orders", "shop.products", "mart.customer_totals", "mart.top_customers")


@dataclass(frozen=True)
class History:
    """What :func:`generate_runs` wrote: how many runs, the newest and oldest start, and the failed runs' ids."""

    runs: int
    events: int
    newest: datetime
    oldest: datetime
    failed: list[str]


def generate_runs(
    store_path: Path,
    count: int,
    *,
    newest: datetime | None = None,
    every: timedelta = timedelta(minutes=7),
    events_per_run: int = 5,
    seed: int = 17,
    jitter: bool = True,
) -> History:
    """Write ``count`` finished runs, one each ``every`` going back from ``newest``, into the SQLite
    tracking store at ``store_path`` (which Conveyor must have created: its tables exist).

    Runs mix commands and pipelines, environments (a pipeline writes both) and statuses (about
    one in twelve failed, with an error; a few cancelled); each has ``events_per_run`` events.
    ``jitter``: start times move by up to a second (off: runs ``every`` apart, ties with ``every=0``).
    """
    rnd = random.Random(seed)
    newest = newest or datetime(2026, 1, 1, tzinfo=UTC)
    runs, events, failed = [], [], []
    for i in range(count):
        started = newest - i * every - timedelta(microseconds=rnd.randrange(1_000_000) if jitter else 0)
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{rnd.getrandbits(24):06x}"
        pipeline = rnd.choice(PIPELINES) if rnd.random() < 0.4 else None
        command = "schedule" if pipeline else rnd.choice(COMMANDS)
        env = rnd.choice(ENVIRONMENTS)
        roll = rnd.random()
        status = "failed" if roll < 0.08 else "cancelled" if roll < 0.1 else "succeeded"
        seconds = round(rnd.uniform(0.5, 900), 3)
        finished = started + timedelta(seconds=seconds)
        error = f"mart.customer_totals build failed: column total is NULL in row {i}" if status == "failed" else None
        if status == "failed":
            failed.append(run_id)
        rows = rnd.randrange(1, 10_000_000)
        if pipeline:  # as conveyor/pipeline/runner.py writes it
            summary = {"rows_extracted": rows, "rows_loaded": rows + 7, "environments": list(ENVIRONMENTS)}
        else:  # as a command's outcome writes it (conveyor/api/commands.py)
            summary = {"extracted_rows": rows, "loaded_rows": rows + 7, "published": status == "succeeded"}
        runs.append((
            run_id, command, "testproj", env, pipeline, None, status, _ts(started), _ts(finished), seconds, error,
            json.dumps(summary, sort_keys=True), "generated-host", 1, "etl", "0.1.0", None, _ts(finished),
        ))  # fmt: skip
        step_start = started
        for j in range(events_per_run):
            step_s = seconds / events_per_run
            step_end = step_start + timedelta(seconds=step_s)
            event_status = "failed" if status == "failed" and j == events_per_run - 1 else "succeeded"
            events.append((
                run_id, RELATIONS[j % len(RELATIONS)], "extract" if j < 3 else "build", event_status,
                _ts(step_start), _ts(step_end), step_s, rnd.randrange(1, 100_000), None,
                error if event_status == "failed" else None, None, env if j >= 3 else None,
            ))  # fmt: skip
            step_start = step_end
    con = sqlite3.connect(store_path)
    try:
        with con:
            con.executemany(
                "INSERT INTO runs (run_id, command, project, environment, pipeline, selection, status, started_at, "
                "finished_at, duration_s, error, summary, host, pid, username, conveyor_version, process_start, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                runs,
            )
            con.executemany(
                "INSERT INTO events (run_id, relation, step, status, started_at, finished_at, duration_s, rows, "
                "bytes, error, detail, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                events,
            )
    finally:
        con.close()
    return History(count, len(events), newest, newest - (count - 1) * every - timedelta(seconds=1), failed)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")
