"""Pipeline state in the tracking store: installed pipelines and scheduled slots.

A *slot* is one scheduled instant of one pipeline. The scheduler claims a slot with an
INSERT before it starts the run; the primary key (pipeline, scheduled_at) makes a second
claim fail, so a slot runs at most once whatever restarts or races happen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conveyor.errors import UserError, did_you_mean
from conveyor.tracking.core import StoreCore
from conveyor.tracking.models import format_ts, parse_ts

PIPELINE_STATUSES = ("active", "paused", "done")
SLOT_STATUSES = ("running", "succeeded", "failed", "missed", "cancelled", "abandoned")
MISSED_BATCH = 150  # slots per INSERT (6 parameters each: under SQLite's old limit of 999)


@dataclass(frozen=True)
class PipelineRow:
    """An installed pipeline."""

    name: str
    project: str
    project_dir: str
    status: str
    schedule: str
    definition: dict[str, Any]
    installed_at: datetime
    updated_at: datetime
    last_slot: datetime | None


@dataclass(frozen=True)
class SlotRow:
    """One scheduled instant of a pipeline, and what became of it."""

    pipeline: str
    scheduled_at: datetime
    status: str
    run_id: str | None
    claimed_at: datetime
    finished_at: datetime | None
    detail: dict[str, Any] | None


def _pipeline(row: dict[str, Any]) -> PipelineRow:
    return PipelineRow(
        row["name"], row["project"], row["project_dir"], row["status"], row["schedule"],
        json.loads(row["definition"]), _ts(row["installed_at"]), _ts(row["updated_at"]), parse_ts(row["last_slot"]),
    )  # fmt: skip


def _slot(row: dict[str, Any]) -> SlotRow:
    detail = json.loads(row["detail"]) if row["detail"] else None
    return SlotRow(
        row["pipeline"], _ts(row["scheduled_at"]), row["status"], row["run_id"], _ts(row["claimed_at"]),
        parse_ts(row["finished_at"]), detail,
    )  # fmt: skip


def _missed_id(slot: datetime) -> str:
    """The run id a missed slot is claimed under (no run ever has it)."""
    return f"{slot.astimezone(UTC):%Y%m%dT%H%M%SZ}-missed"


def _ts(value: str) -> datetime:
    parsed = parse_ts(value)
    assert parsed is not None
    return parsed


class PipelineState(StoreCore):
    """Mixed into :class:`~conveyor.tracking.store.TrackingStore`: installed pipelines and their slots."""

    def install_pipeline(
        self,
        name: str,
        *,
        project: str,
        project_dir: str,
        schedule: str,
        definition: dict[str, Any],
        now: datetime | None = None,
    ) -> PipelineRow:
        """Install (or reinstall, keeping its slot history) a pipeline; it becomes active.

        ``now`` is the install instant on the scheduler's clock: no slot before it runs. A
        reinstall that changes the schedule, or of a pipeline that was paused or done, starts
        afresh from ``now`` too: slots of the old schedule (or from while it was not active) are
        neither caught up nor alerted as missed. A reinstall that only changes the steps keeps
        the catch-up state, so runs missed while the scheduler was down still count.
        """
        stamp = format_ts(now or datetime.now(UTC))
        text = json.dumps(definition, sort_keys=True, default=str)
        with self._session() as db, db.transaction():
            updated = db.execute(
                "UPDATE pipelines SET project = ?, project_dir = ?, definition = ?, updated_at = ?, "
                "last_slot = CASE WHEN schedule <> ? OR status <> 'active' THEN ? ELSE last_slot END, "
                "schedule = ?, status = 'active' WHERE name = ?",
                (project, project_dir, text, stamp, schedule, stamp, schedule, name),
            )
            if not updated:
                db.execute(
                    "INSERT INTO pipelines (name, project, project_dir, status, schedule, definition, installed_at, "
                    "updated_at, last_slot) VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?)",
                    (name, project, project_dir, schedule, text, stamp, stamp, stamp),
                )
        return self.get_pipeline(name)

    def get_pipeline(self, name: str) -> PipelineRow:
        """An installed pipeline; a missing one is a user error with a did-you-mean."""
        with self._session() as db:
            rows = db.query("SELECT * FROM pipelines WHERE name = ?", (name,))
        if not rows:
            known = [p.name for p in self.list_pipelines()]
            raise UserError(
                f'pipeline "{name}" is not installed.' + did_you_mean(name, known),
                hint=f'Install it with "conveyor pipeline install {name}".',
            )
        return _pipeline(rows[0])

    def list_pipelines(self) -> list[PipelineRow]:
        with self._session() as db:
            return [_pipeline(r) for r in db.query("SELECT * FROM pipelines ORDER BY name")]

    def set_pipeline_status(self, name: str, status: str) -> None:
        if status not in PIPELINE_STATUSES:
            raise ValueError(f"unknown pipeline status {status!r}")
        self.get_pipeline(name)
        with self._session() as db:
            db.execute(
                "UPDATE pipelines SET status = ?, updated_at = ? WHERE name = ?",
                (status, format_ts(datetime.now(UTC)), name),
            )

    def remove_pipeline(self, name: str) -> None:
        """Uninstall a pipeline; its runs stay in the history."""
        self.get_pipeline(name)
        with self._session() as db:
            db.execute("DELETE FROM pipelines WHERE name = ?", (name,))

    def set_last_slot(self, name: str, slot: datetime) -> None:
        """Remember the newest slot handled, so a restart knows what was missed."""
        with self._session() as db:
            db.execute(
                "UPDATE pipelines SET last_slot = ? WHERE name = ? AND (last_slot IS NULL OR last_slot < ?)",
                (format_ts(slot), name, format_ts(slot)),
            )

    def claim_slot(self, name: str, scheduled_at: datetime, run_id: str, status: str = "running") -> bool:
        """Claim one scheduled instant for ``run_id``; False when it was claimed before.

        The insert is a no-op on conflict and the row is read back: only the claimant whose
        run id is in the row owns the slot, so two racing claims can never both win.
        """
        if status not in SLOT_STATUSES:
            raise ValueError(f"unknown slot status {status!r}")
        key = (name, format_ts(scheduled_at))
        with self._session() as db:
            db.execute(
                "INSERT INTO pipeline_slots (pipeline, scheduled_at, status, run_id, claimed_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (pipeline, scheduled_at) DO NOTHING",
                (*key, status, run_id, format_ts(datetime.now(UTC))),
            )
            owner = db.query("SELECT run_id FROM pipeline_slots WHERE pipeline = ? AND scheduled_at = ?", key)
        return bool(owner) and owner[0]["run_id"] == run_id

    def record_missed(self, name: str, slots: Sequence[datetime]) -> list[datetime]:
        """Record ``slots`` (in order) as missed, in one transaction, and move ``last_slot`` to the last.

        Slots claimed before (by a scheduler that died) are left as they are. Returns the slots
        recorded now, so that a caller alerts each missed slot once only.
        """
        if not slots:
            return []
        claimed = format_ts(datetime.now(UTC))
        recorded: list[datetime] = []
        with self._session() as db, db.transaction():
            for start in range(0, len(slots), MISSED_BATCH):
                chunk = slots[start : start + MISSED_BATCH]
                values = ", ".join(["(?, ?, 'missed', ?, ?)"] * len(chunk))
                params = [v for slot in chunk for v in (name, format_ts(slot), _missed_id(slot), claimed)]
                rows = db.query(
                    "INSERT INTO pipeline_slots (pipeline, scheduled_at, status, run_id, claimed_at) "
                    f"VALUES {values} ON CONFLICT (pipeline, scheduled_at) DO NOTHING RETURNING scheduled_at",
                    params,
                )
                recorded.extend(_ts(r["scheduled_at"]) for r in rows)
            last = format_ts(slots[-1])
            db.execute(
                "UPDATE pipelines SET last_slot = ? WHERE name = ? AND (last_slot IS NULL OR last_slot < ?)",
                (last, name, last),
            )
        return sorted(recorded)

    def running_slots(self, name: str) -> list[SlotRow]:
        """The slots of ``name`` still marked running (oldest first)."""
        with self._session() as db:
            rows = db.query(
                "SELECT * FROM pipeline_slots WHERE pipeline = ? AND status = 'running' ORDER BY scheduled_at", (name,)
            )
        return [_slot(r) for r in rows]

    def finish_slot(
        self,
        name: str,
        scheduled_at: datetime,
        status: str,
        *,
        run_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if status not in SLOT_STATUSES:
            raise ValueError(f"unknown slot status {status!r}")
        with self._session() as db:
            db.execute(
                "UPDATE pipeline_slots SET status = ?, run_id = coalesce(?, run_id), finished_at = ?, detail = ? "
                "WHERE pipeline = ? AND scheduled_at = ?",
                (
                    status,
                    run_id,
                    format_ts(datetime.now(UTC)),
                    json.dumps(detail) if detail else None,
                    name,
                    format_ts(scheduled_at),
                ),
            )

    def get_slot(self, name: str, scheduled_at: datetime) -> SlotRow | None:
        """One slot, or None when it was never claimed."""
        with self._session() as db:
            rows = db.query(
                "SELECT * FROM pipeline_slots WHERE pipeline = ? AND scheduled_at = ?", (name, format_ts(scheduled_at))
            )
        return _slot(rows[0]) if rows else None

    def note_slot(self, name: str, scheduled_at: datetime, detail: dict[str, Any]) -> None:
        """Merge ``detail`` into a slot's detail (the scheduler notes its run's process there)."""
        with self._session() as db, db.transaction():
            rows = db.query(
                "SELECT detail FROM pipeline_slots WHERE pipeline = ? AND scheduled_at = ?",
                (name, format_ts(scheduled_at)),
            )
            if not rows:
                return
            merged = {**json.loads(rows[0]["detail"] or "{}"), **detail}
            db.execute(
                "UPDATE pipeline_slots SET detail = ? WHERE pipeline = ? AND scheduled_at = ?",
                (json.dumps(merged), name, format_ts(scheduled_at)),
            )

    def slots(self, name: str, limit: int = 20) -> list[SlotRow]:
        with self._session() as db:
            rows = db.query(
                "SELECT * FROM pipeline_slots WHERE pipeline = ? ORDER BY scheduled_at DESC LIMIT ?", (name, limit)
            )
        return [_slot(r) for r in rows]

    def iter_all_slots(self) -> Iterator[SlotRow]:
        with self._session() as db:
            rows = db.query("SELECT * FROM pipeline_slots ORDER BY pipeline, scheduled_at")
        yield from (_slot(r) for r in rows)
