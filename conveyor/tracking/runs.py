"""Runs and their events in the tracking store."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor import __version__
from conveyor.errors import UserError
from conveyor.tracking.core import TrackingStoreError
from conveyor.tracking.heartbeat import Heartbeat
from conveyor.tracking.liveness import RunLiveness, process_start, run_lease_s
from conveyor.tracking.models import (
    EVENT_STATUSES,
    RUN_STATUSES,
    EventRow,
    FinishedEvent,
    RunRow,
    format_ts,
    parse_ts,
    row_from,
)
from conveyor.tracking.rows import (
    EVENT_COLUMNS,
    RUN_COLUMNS,
    check_status,
    current_user,
    now_utc,
    seconds_between,
    to_json,
    where_clause,
)

_AMBIGUOUS_SHOWN = 5

RUN_HEARTBEAT_S = 30.0
"""How often a running run's process refreshes ``runs.heartbeat_at`` (see :mod:`.liveness`); more
often when a shorter run lease is set (four beats per :func:`~.liveness.run_lease_s`)."""


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id: UTC time plus 6 random hex digits, e.g. ``20261121T055940Z-3f9a1c``."""
    moment = (now or now_utc()).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class RunHistory(RunLiveness):
    """Mixed into :class:`~conveyor.tracking.store.TrackingStore`: runs (with their heartbeats) and events."""

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        command: str,
        *,
        project: str,
        environment: str | None = None,
        pipeline: str | None = None,
        selection: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a new run with status ``running``, made by this process, and heartbeat it.

        The run records this host, pid and process start time, and a daemon thread refreshes
        its ``heartbeat_at`` every 30 s until :meth:`finish_run` or :meth:`close`. A run whose
        process dies without finishing it is marked ``abandoned`` by its readers (see
        :meth:`abandon_dead_runs`).

        Args:
            command: The command, e.g. ``run``, ``extract``, ``load`` or ``schedule``.
            project: The project's name.
            environment: The target environment, if any.
            pipeline: The scheduled pipeline, if any.
            selection: The selection expression as the user wrote it.
            run_id: A given id; by default a new sortable one (see :func:`new_run_id`).

        Returns:
            The run id.
        """
        run_id = run_id or new_run_id()
        now = format_ts(now_utc())
        values = (
            run_id, command, project, environment, pipeline, selection, "running", now, self._host, os.getpid(),
            current_user(), __version__, process_start(os.getpid()), now,
        )  # fmt: skip
        with self._session() as db:
            db.execute(
                "INSERT INTO runs (run_id, command, project, environment, pipeline, selection, status, started_at, "
                "host, pid, username, conveyor_version, process_start, heartbeat_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        self._beats[run_id] = Heartbeat(
            lambda: self.beat_run(run_id), min(RUN_HEARTBEAT_S, run_lease_s() / 4), f"run-heartbeat-{run_id}"
        )
        self._beats[run_id].start()
        return run_id

    def finish_run(
        self, run_id: str, status: str, *, error: str | None = None, summary: Mapping[str, Any] | None = None
    ) -> None:
        """Mark a run finished.

        Args:
            run_id: The run.
            status: ``succeeded``, ``failed``, ``cancelled`` or ``abandoned``. A run marked
                ``abandoned`` that finishes after all takes its real status.
            error: The error that ended the run, if any.
            summary: A JSON-serializable summary (counts per status, ...).

        Raises:
            ValueError: ``status`` is not a final run status.
            TrackingStoreError: there is no such run.
        """
        check_status(status, RUN_STATUSES - {"running"}, "run")
        self._stop_beat(run_id)  # outside the session: a beat in progress waits for it
        now = now_utc()
        with self._session() as db:
            started = self._started_at(db, "runs", "run_id", run_id)
            db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, duration_s = ?, error = ?, summary = ? WHERE run_id = ?",
                (status, format_ts(now), seconds_between(started, now), error, to_json(summary), run_id),
            )

    def list_runs(
        self,
        *,
        limit: int = 20,
        pipeline: str | None = None,
        status: str | None = None,
        command: str | None = None,
        statuses: Sequence[str] = (),
        environment: str | None = None,
        before: str | None = None,
        started_from: datetime | None = None,
        started_until: datetime | None = None,
    ) -> list[RunRow]:
        """The most recent runs first, optionally filtered (``statuses``: any of these;
        ``environment``: runs that wrote it, as their environment or in any step).

        ``before`` (a run id) pages through history: only the runs listed after it, i.e. older,
        found through the index on ``started_at`` (keyset paging), so a page deep in 10,000
        runs costs what the first does. ``started_from`` (inclusive) and ``started_until``
        (exclusive), time-zone aware, keep the runs that started in that span.

        Runs whose process died are marked ``abandoned`` first (:meth:`abandon_dead_runs`).

        Raises:
            UserError: ``before`` names no run.
        """
        self.abandon_dead_runs()
        clause, params = where_clause({"pipeline": pipeline, "status": status, "command": command})
        if before is not None:
            anchor = self._runs("WHERE run_id = ? ", [before], 1)
            if not anchor:
                raise UserError(f'there is no run "{before}" to list the runs before.', hint=self._recent_hint())
            # a row value, which both backends compare in order and SQLite reads as a range of
            # runs_started_at_idx (an OR of the two cases would sort every older run)
            clause += ("AND " if clause else "WHERE ") + "(started_at, run_id) < (?, ?) "
            params += [format_ts(anchor[0].started_at), before]
        for bound, operator in ((started_from, ">="), (started_until, "<")):
            if bound is not None:
                clause += ("AND " if clause else "WHERE ") + f"started_at {operator} ? "
                params.append(format_ts(bound))
        if statuses:
            clause += ("AND " if clause else "WHERE ") + f"status IN ({', '.join('?' * len(statuses))}) "
            params += list(statuses)
        if environment is not None:
            clause += ("AND " if clause else "WHERE ") + (
                # EXISTS, probed per run through events_environment_idx: the newest matches come first
                # and the scan stops at the page's end (IN would collect every run of the environment)
                "(environment = ? OR EXISTS (SELECT 1 FROM events "
                "WHERE events.run_id = runs.run_id AND events.environment = ?)) "
            )
            params += [environment, environment]
        return self._runs(clause, params, limit)

    def get_run(self, run_id_or_prefix: str) -> RunRow:
        """Find one run by its id, a unique prefix of it, or ``last`` / ``latest``.

        Runs whose process died are marked ``abandoned`` first (:meth:`abandon_dead_runs`).

        Raises:
            UserError: nothing matches, or the prefix matches several runs.
        """
        self.abandon_dead_runs()
        key = run_id_or_prefix.strip()
        if key.lower() in ("last", "latest"):
            return self._latest_run()
        if not key:
            raise UserError("an empty run id matches nothing.", hint="Give a run id, a prefix of one, or 'last'.")
        exact = self._runs("WHERE run_id = ? ", [key], 1)
        if exact:
            return exact[0]
        matches = self._runs("WHERE substr(run_id, 1, ?) = ? ", [len(key), key], _AMBIGUOUS_SHOWN + 1)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UserError(f'no run id starts with "{key}".', hint=self._recent_hint())
        shown = ", ".join(m.run_id for m in matches[:_AMBIGUOUS_SHOWN])
        more = " and more" if len(matches) > _AMBIGUOUS_SHOWN else ""
        raise UserError(
            f'run id prefix "{key}" is ambiguous: it matches {shown}{more}.',
            hint="Give more characters of the run id.",
        )

    def _latest_run(self) -> RunRow:
        runs = self._runs("", [], 1)
        if not runs:
            raise UserError(
                f"no runs are recorded in the tracking store {self.location} yet.",
                hint="Runs appear here once a command such as run, extract or load has started.",
            )
        return runs[0]

    def _recent_hint(self) -> str:
        recent = [run.run_id for run in self._runs("", [], 3)]
        if not recent:
            return "No runs are recorded yet."
        return f"The most recent runs are {', '.join(recent)}; 'last' means the newest."

    def _runs(self, clause: str, params: list[Any], limit: int) -> list[RunRow]:
        sql = f"SELECT {RUN_COLUMNS} FROM runs {clause}ORDER BY started_at DESC, run_id DESC LIMIT ?"
        with self._session() as db:
            return [row_from(RunRow, row) for row in db.query(sql, [*params, limit])]

    # -- events ----------------------------------------------------------------------------

    def start_event(
        self,
        run_id: str,
        relation: str,
        step: str,
        *,
        detail: Mapping[str, Any] | None = None,
        environment: str | None = None,
    ) -> int:
        """Record that ``step`` of ``relation`` started in ``run_id`` (in ``environment``); return the event id."""
        with self._session() as db:
            return db.insert_id(
                "INSERT INTO events (run_id, relation, step, status, started_at, detail, environment) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (run_id, relation, step, format_ts(now_utc()), to_json(detail), environment),
            )

    def finish_event(
        self,
        event_id: int,
        status: str,
        *,
        rows: int | None = None,
        bytes: int | None = None,
        error: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Mark an event finished.

        Args:
            event_id: From :meth:`start_event`.
            status: ``succeeded``, ``failed``, ``skipped`` or ``cancelled``.
            rows: Rows extracted, loaded or built.
            bytes: Bytes written.
            error: The error message when it failed.
            detail: Merged over the detail given at start.

        Raises:
            ValueError: ``status`` is not a final event status.
            TrackingStoreError: there is no such event.
        """
        check_status(status, EVENT_STATUSES - {"running"}, "event")
        now = now_utc()
        with self._session() as db:
            found = db.query("SELECT started_at, detail FROM events WHERE id = ?", (event_id,))
            if not found:
                raise TrackingStoreError(f"there is no event {event_id} in the tracking store {self.location}.")
            merged = {**json.loads(found[0]["detail"] or "{}"), **(detail or {})} or None
            started = parse_ts(found[0]["started_at"])
            db.execute(
                "UPDATE events SET status = ?, finished_at = ?, duration_s = ?, rows = ?, bytes = ?, "
                "error = ?, detail = ? WHERE id = ?",
                (status, format_ts(now), seconds_between(started, now), rows, bytes, error, to_json(merged), event_id),
            )

    def record_event(
        self,
        run_id: str,
        relation: str,
        step: str,
        status: str,
        *,
        started_at: datetime,
        finished_at: datetime,
        rows: int | None = None,
        bytes: int | None = None,
        error: str | None = None,
        detail: Mapping[str, Any] | None = None,
        environment: str | None = None,
    ) -> int:
        """Record a finished event in one call (a skipped step, say); return its id.

        Raises:
            ValueError: a bad status, or a naive datetime.
        """
        event = FinishedEvent(relation, step, status, started_at, finished_at, rows, bytes, error, detail, environment)
        values = _finished_values(run_id, event)
        with self._session() as db:
            return db.insert_id(_INSERT_FINISHED, values)

    def record_events(self, run_id: str, events: Sequence[FinishedEvent]) -> list[int]:
        """Record finished events in one transaction (e.g. the data tests of one relation); return their ids.

        Raises:
            ValueError: a bad status, or a naive datetime (nothing is recorded).
        """
        values = [_finished_values(run_id, event) for event in events]
        if not values:
            return []
        with self._session() as db, db.transaction():
            return [db.insert_id(_INSERT_FINISHED, row) for row in values]

    def run_events(self, run_id: str) -> list[EventRow]:
        """The events of one run, in the order they started."""
        with self._session() as db:
            rows = db.query(f"SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ? ORDER BY id", (run_id,))
        return [row_from(EventRow, row) for row in rows]

    def relation_events(self, relation: str, *, limit: int = 50, steps: Sequence[str] = ()) -> list[EventRow]:
        """The newest events of one relation (of ``steps`` only, if given), newest first, through
        the index on (relation, started_at)."""
        clause = f"AND step IN ({', '.join('?' * len(steps))}) " if steps else ""
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE relation = ? {clause}ORDER BY started_at DESC, id DESC LIMIT ?"
        with self._session() as db:
            rows = db.query(sql, [relation, *steps, limit])
        return [row_from(EventRow, row) for row in rows]

    def latest_events(self, relations: Sequence[str]) -> dict[str, EventRow]:
        """The newest event of each of ``relations`` that has one (what the lineage page colours
        a relation by): one probe of the index on (relation, started_at) per relation."""
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE relation = ? ORDER BY started_at DESC, id DESC LIMIT 1"
        found: dict[str, EventRow] = {}
        with self._session() as db:
            for relation in dict.fromkeys(relations):
                rows = db.query(sql, (relation,))
                if rows:
                    found[relation] = row_from(EventRow, rows[0])
        return found


_INSERT_FINISHED = (
    "INSERT INTO events (run_id, relation, step, status, started_at, finished_at, duration_s, "
    "rows, bytes, error, detail, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _finished_values(run_id: str, event: FinishedEvent) -> tuple[Any, ...]:
    check_status(event.status, EVENT_STATUSES - {"running"}, "event")
    return (
        run_id, event.relation, event.step, event.status, format_ts(event.started_at), format_ts(event.finished_at),
        seconds_between(event.started_at, event.finished_at), event.rows, event.bytes, event.error,
        to_json(event.detail), event.environment,
    )  # fmt: skip
