"""What the pages and the JSON API show, made from the tracking store's rows.

Every function returns plain dicts and lists (JSON-ready: text, numbers, None) with every
text scrubbed of secrets (:func:`conveyor.config.secrets.scrub`, as the CLI does with
errors), so a template or ``JSONResponse`` can show them as they are: the templates escape
them, the API serialises them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor.config.secrets import scrub
from conveyor.tracking.models import EventRow, ExtractRow, ExtractStateRow, RunRow

ACTIVE_EVENT = "running"
FAILED_EVENT_STATUSES = frozenset({"failed", "abandoned", "cancelled"})
"""Event statuses whose error the run page shows in full."""


def scrubbed(value: Any) -> Any:
    """``value`` with :func:`scrub` applied to every text in it (dict keys too), recursively."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {scrubbed(str(k)): scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v) for v in value]
    return value


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO-8601 UTC text with microseconds (what the API returns)."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def when(value: datetime | None) -> str:
    """A timestamp as a person reads it on the page: ``2026-12-07 12:47:53 UTC``."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """``0.24 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def environments(run: RunRow) -> list[str]:
    """The environments a run wrote: a pipeline with a secondary loads two (from its summary)."""
    listed = run.summary.get("environments") if isinstance(run.summary, dict) else None
    if isinstance(listed, list) and listed:
        return [str(env) for env in listed]
    return [run.environment] if run.environment else []


def run_rows(run: RunRow) -> tuple[int | None, str]:
    """The rows a run moved, from its summary: the rows it loaded (else extracted), and all it says
    (``12 extracted · 19 loaded``); None and empty text when its summary does not say (it runs)."""
    summary = run.summary if isinstance(run.summary, dict) else {}
    counts = {}
    # a command's summary says extracted_rows and loaded_rows, a pipeline's rows_extracted and rows_loaded
    for keys, word in ((("extracted_rows", "rows_extracted"), "extracted"), (("loaded_rows", "rows_loaded"), "loaded")):
        value = next((summary[k] for k in keys if k in summary), None)
        if isinstance(value, int) and not isinstance(value, bool):
            counts[word] = value
    main = next((counts[w] for w in ("loaded", "extracted") if w in counts), None)
    return main, " · ".join(f"{value:,} {word}" for word, value in counts.items())


def run_item(run: RunRow, now: datetime | None = None) -> dict[str, Any]:
    """One run as a row of the runs page and of ``/api/runs``."""
    rows, rows_detail = run_rows(run)
    seconds = run.duration_s
    if seconds is None and run.status == "running":
        seconds = ((now or datetime.now(UTC)) - run.started_at).total_seconds()
    return scrubbed({
        "run_id": run.run_id,
        "command": run.command,
        "pipeline": run.pipeline,
        "what": f"pipeline {run.pipeline}" if run.pipeline else run.command,
        "selection": run.selection,
        "environments": environments(run),
        "status": run.status,
        "started_at": iso(run.started_at),
        "started": when(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_s": seconds,
        "duration": duration(seconds),
        "rows": rows,
        "rows_text": "" if rows is None else f"{rows:,}",
        "rows_detail": rows_detail,
        "error": run.error,
        "error_line": (run.error or "").strip().splitlines()[0] if (run.error or "").strip() else "",
    })  # fmt: skip


def step_name(event: EventRow) -> str:
    """The step as a person reads it: a test event names its test."""
    if event.step == "test" and event.detail and event.detail.get("test"):
        return f"test {event.detail['test']}"
    return event.step


def run_detail(run: RunRow, events: Sequence[EventRow], now: datetime | None = None) -> dict[str, Any]:
    """Everything the run page and ``/api/runs/{id}`` show: the run, its timeline, errors and tests.

    The timeline places each (relation, step) on the run's time span: ``x`` and ``w`` are its
    start and length in thousandths of the span (an event still running ends now), so the page
    draws it without a chart library and the live update moves it in place.
    """
    now = now or datetime.now(UTC)
    begin = run.started_at
    ends = [run.finished_at or (now if run.status == "running" else begin)]
    ends += [e.finished_at or (now if e.status == ACTIVE_EVENT else e.started_at) for e in events]
    begin = min([begin, *(e.started_at for e in events)])
    span = max((max(ends) - begin).total_seconds(), 1e-6)
    timeline = []
    for event in events:
        end = event.finished_at or (now if event.status == ACTIVE_EVENT else event.started_at)
        start_s = (event.started_at - begin).total_seconds()
        length_s = max((end - event.started_at).total_seconds(), 0.0)
        seconds = event.duration_s if event.duration_s is not None else length_s
        timeline.append({
            "id": event.id, "relation": event.relation, "step": step_name(event),
            "environment": event.environment or "", "status": event.status, "rows": event.rows,
            "rows_text": "" if event.rows is None else f"{event.rows:,}",
            "started_at": iso(event.started_at), "finished_at": iso(event.finished_at),
            "duration_s": seconds, "duration": duration(seconds),
            "offset": duration(start_s) if start_s >= 0.005 else "0 s",
            "x": round(1000 * start_s / span, 1), "w": round(max(1000 * length_s / span, 2.0), 1),
            "error": event.error or "",
        })  # fmt: skip
    errors = [
        {"relation": e.relation, "step": step_name(e), "status": e.status, "error": e.error}
        for e in events
        if e.error and e.step != "test" and e.status in FAILED_EVENT_STATUSES
    ]
    return scrubbed({
        "run": {**run_item(run, now), "host": run.host, "username": run.username,
                "conveyor_version": run.conveyor_version, "summary": run.summary},
        "span_s": span,
        "axis": [duration(span * i / 4) if i else "0 s" for i in range(5)],
        "timeline": timeline,
        "errors": errors,
        "tests": [_test(e) for e in events if e.step == "test"],
    })  # fmt: skip


def _test(event: EventRow) -> dict[str, Any]:
    """A data test's result; a failed or warned one carries its first failing rows and the query."""
    detail = event.detail or {}
    rows = detail.get("rows") if event.status in ("failed", "warned") else None
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    columns: list[str] = []
    for row in rows:
        columns += [str(c) for c in row if str(c) not in columns]
    return {
        "relation": event.relation,
        "test": str(detail.get("test") or ""),
        "status": event.status,
        "failures": detail.get("failures"),
        "message": event.error or "",
        "location": str(detail.get("location") or ""),
        "sql": str(detail.get("sql") or ""),
        "columns": columns,
        "rows": [["" if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows],
        "environment": event.environment or "",
    }


# -- pipelines ----------------------------------------------------------------------------------

_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_SHORTHANDS = {
    "@hourly": ("every hour, on the hour", "0 * * * *"),
    "@daily": ("every day at 00:00", "0 0 * * *"),
    "@midnight": ("every day at 00:00", "0 0 * * *"),
    "@weekly": ("every Sunday at 00:00", "0 0 * * 0"),
    "@monthly": ("on the 1st of every month at 00:00", "0 0 1 * *"),
    "@yearly": ("every 1 January at 00:00", "0 0 1 1 *"),
    "@annually": ("every 1 January at 00:00", "0 0 1 1 *"),
}


def schedule_words(text: str) -> tuple[str, str]:
    """A pipeline's schedule in words and as a cron expression (with its zone when not UTC).

    ``nightly at 02:30 Europe/Berlin`` -> (``every day at 02:30 Europe/Berlin``, ``30 2 * * * Europe/Berlin``);
    a cron expression says what it can of common shapes (every N minutes, hourly, daily,
    weekly) and else ``on a cron schedule``; ``manual`` and ``once`` have no cron expression.
    """
    from conveyor.config.schedule import parse_schedule

    try:
        schedule = parse_schedule(text)
    except ValueError:
        return "not a schedule Conveyor reads", ""
    zone = "" if schedule.zone.key == "UTC" else f" {schedule.zone.key}"
    if schedule.kind == "manual":
        return "only when run by hand", ""
    if schedule.kind == "once":
        return f"once, at {when(schedule.moment)}", ""
    if schedule.kind == "nightly":
        assert schedule.at is not None
        at = schedule.at
        return f"every day at {at:%H:%M}{zone or ' UTC'}", f"{at.minute} {at.hour} * * *{zone}"
    assert schedule.cron is not None
    if schedule.cron in _SHORTHANDS:
        words, cron = _SHORTHANDS[schedule.cron]
        return words + (zone or " UTC"), cron + zone
    return _cron_words(schedule.cron) + (zone or " UTC"), schedule.cron + zone


def _cron_words(cron: str) -> str:
    minute, hour, day, month, weekday = cron.split()
    if (day, month) != ("*", "*"):
        return "on a cron schedule"
    if hour == "*" and weekday == "*":
        if minute == "*":
            return "every minute"
        if minute.startswith("*/") and minute[2:].isdigit():
            return f"every {int(minute[2:])} minutes"
        if minute.isdigit():
            return f"every hour at minute {int(minute)}"
    if minute.isdigit() and hour.isdigit():
        at = f"{int(hour):02d}:{int(minute):02d}"
        if weekday == "*":
            return f"every day at {at}"
        if weekday.isdigit() and int(weekday) <= 7:
            return f"every {_WEEKDAYS[int(weekday) % 7]} at {at}"
        if weekday == "1-5":
            return f"every weekday at {at}"
    return "on a cron schedule"


def pipeline_item(row: Mapping[str, Any], runs: Sequence[RunRow], now: datetime | None = None) -> dict[str, Any]:
    """One pipeline as a row of the pipelines page and of ``/api/pipelines``, from a row of
    :func:`conveyor.api.pipelines` and its most recent runs."""
    words, cron = schedule_words(str(row["schedule"]))
    nxt = datetime.fromisoformat(str(row["next_run"])) if row["next_run"] else None
    return scrubbed({
        "name": row["name"],
        "schedule": row["schedule"],
        "schedule_words": words,
        "cron": cron,
        "status": row["status"],
        "can_pause": row["status"] == "active",
        "can_resume": row["status"] == "paused",
        "can_run": row["definition"] != "not defined",
        "definition": row["definition"],
        "note": row["note"] or "",
        "next_run": iso(nxt),
        "next": when(nxt) if nxt else ("paused" if row["status"] == "paused" else ""),
        "runs": [run_item(r, now) for r in runs],
    })  # fmt: skip


# -- a relation ---------------------------------------------------------------------------------

SPARK_STEPS = ("build", "load", "extract")
"""The step a relation's sparklines follow: its build, else its load, else its extract."""
SPARK_W, SPARK_H = 240, 36


def sparkline(values: Sequence[float | None]) -> str:
    """The ``points`` of an SVG polyline of ``values`` (oldest first) in a SPARK_W x SPARK_H box;
    empty with fewer than two known values."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return ""
    low, high = min(v for _, v in known), max(v for _, v in known)
    span = (high - low) or 1.0
    step = SPARK_W / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{SPARK_H - 2 - (v - low) / span * (SPARK_H - 4):.1f}" for i, v in known)


def relation_detail(
    relation: Any, parents: Sequence[str], children: Sequence[str], events: Sequence[EventRow]
) -> dict[str, Any]:
    """Everything the relation page and ``/api/relations/{name}`` show: its design, SQL, columns,
    tests, neighbours, its newest events (newest first) and sparklines of its build time and rows
    over the last ones of its main step (oldest first)."""
    design = relation.design
    tests = [_test_text(t) for t in design.tests]
    for column in design.columns:
        tests += [f"{column.name}: {_test_text(t)}" for t in column.tests]
    builds = [
        {
            "id": e.id, "run_id": e.run_id, "step": step_name(e), "status": e.status,
            "environment": e.environment or "", "rows": e.rows, "rows_text": "" if e.rows is None else f"{e.rows:,}",
            "duration_s": e.duration_s, "duration": duration(e.duration_s),
            "started_at": iso(e.started_at), "started": when(e.started_at), "error": e.error or "",
        }
        for e in events
    ]  # fmt: skip
    step = next((s for s in SPARK_STEPS if any(e.step == s for e in events)), None)
    series = [e for e in events if e.step == step and e.status == "succeeded"][:SPARK_RUNS][::-1]
    times = [e.duration_s for e in series]
    rows = [float(e.rows) if e.rows is not None else None for e in series]
    known_rows = [r for r in rows if r is not None]
    known_times = [t for t in times if t is not None]
    return scrubbed({
        "name": relation.name, "schema": relation.schema, "kind": relation.kind,
        "description": design.description or "", "source": relation.source or "",
        "source_table": design.source_table or "", "tags": list(design.tags),
        "sql": relation.sql or "", "sql_path": str(relation.sql_path.name) if relation.sql_path else "",
        "columns": [
            {"name": c.name, "type": c.type or "", "not_null": c.not_null, "description": c.description or "",
             "skipped": c.skipped}
            for c in design.columns
        ],
        "primary_key": list(design.constraints.primary_key), "tests": tests,
        "parents": list(parents), "children": list(children), "builds": builds,
        "spark": {
            "step": step or "", "runs": len(series), "width": SPARK_W, "height": SPARK_H,
            "time": sparkline(times), "rows": sparkline(rows),
            "time_last": duration(known_times[-1]) if known_times else "",
            "time_range": f"{duration(min(known_times))} – {duration(max(known_times))}" if known_times else "",
            "rows_last": f"{known_rows[-1]:,.0f}" if known_rows else "",
            "rows_range": f"{min(known_rows):,.0f} – {max(known_rows):,.0f}" if known_rows else "",
        },
    })  # fmt: skip


SPARK_RUNS = 30
"""The runs a sparkline covers, at most."""


def _test_text(test: Any) -> str:
    """A data test as the design writes it, on one line (``unique: {column: id}``)."""
    import json

    dumped = test.model_dump(exclude_defaults=True, exclude_none=True) if hasattr(test, "model_dump") else test
    if isinstance(dumped, dict) and len(dumped) == 1:
        ((kind, args),) = dumped.items()
        return f"{kind}: {json.dumps(args, default=str)}" if args not in ({}, None, True) else str(kind)
    return json.dumps(dumped, default=str)


# -- extracts -----------------------------------------------------------------------------------


def watermark_text(text: str | None) -> str:
    """A watermark as the store keeps it (typed JSON) as a person reads it: ``updated_at = 2026-12-07 ...``."""
    import json

    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return str(data)
    return f"{data.get('cursor')} = {data.get('value')}"


def size(value: int | None) -> str:
    """Bytes as ``12.3 MB`` (powers of 1,000, as `conveyor extract status` counts them exactly)."""
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1000
    return ""  # pragma: no cover


def extract_item(relation: str, source: str, state: ExtractStateRow | None, fresh: Any | None) -> dict[str, Any]:
    """One source table as a row of the extracts page and of ``/api/extracts``: the store's
    extract state (latest attempt, last success, rows, bytes, watermark) and its freshness
    (:class:`conveyor.extract.freshness.FreshnessRow`; None for a table no longer in the project)."""
    return scrubbed({
        "relation": relation, "source": source,
        "upstream": (state.upstream_table if state else None) or "",
        "in_project": fresh is not None,
        "status": state.status if state else "never extracted",
        "last_success_at": iso(state.last_success_at) if state else None,
        "last_success": when(state.last_success_at) if state else "",
        "rows": state.rows if state else None,
        "rows_text": "" if state is None or state.rows is None else f"{state.rows:,}",
        "bytes": state.bytes if state else None, "bytes_text": size(state.bytes) if state else "",
        "watermark": watermark_text(state.watermark) if state else "",
        "error": (state.error or "") if state else "",
        "error_line": (state.error or "").strip().splitlines()[0] if state and (state.error or "").strip() else "",
        "freshness": fresh.status if fresh else "",
        "age_s": fresh.age_s if fresh else None, "age": fresh.age_text if fresh else "",
        "measure": (f"cursor {fresh.cursor}" if fresh.measure == "cursor" and fresh.cursor else fresh.measure)
        if fresh else "",
        "newest": when(fresh.newest) if fresh else "",
        "warn_after": (fresh.warn_after or "") if fresh else "",
        "error_after": (fresh.error_after or "") if fresh else "",
        "note": (fresh.note or "") if fresh else "",
    })  # fmt: skip


def extract_attempt(row: ExtractRow) -> dict[str, Any]:
    """One extract attempt, a row of a source table's history."""
    return scrubbed({
        "extract_id": row.extract_id, "run_id": row.run_id, "status": row.status,
        "started_at": iso(row.started_at), "started": when(row.started_at),
        "duration_s": row.duration_s, "duration": duration(row.duration_s),
        "rows": row.rows, "rows_text": "" if row.rows is None else f"{row.rows:,}",
        "bytes": row.bytes, "bytes_text": size(row.bytes),
        "watermark_low": watermark_text(row.watermark_low), "watermark_high": watermark_text(row.watermark_high),
        "manifest": row.manifest_path or "", "upstream": row.upstream_table or "", "error": row.error or "",
    })  # fmt: skip
