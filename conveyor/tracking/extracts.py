"""Extracts and the extract state (watermarks) in the tracking store."""

from __future__ import annotations

from conveyor.tracking.core import TrackingStoreError
from conveyor.tracking.liveness import RunLiveness
from conveyor.tracking.models import (
    EXTRACT_STATUSES,
    ExtractRow,
    ExtractStateRow,
    format_ts,
    parse_ts,
    row_from,
)
from conveyor.tracking.rows import (
    EXTRACT_COLUMNS,
    STATE_COLUMNS,
    check_status,
    now_utc,
    seconds_between,
    where_clause,
)


class ExtractHistory(RunLiveness):
    """Mixed into :class:`~conveyor.tracking.store.TrackingStore`: extracts and their watermarks."""

    # -- extracts --------------------------------------------------------------------------

    def start_extract(
        self, run_id: str, source: str, table: str, extract_id: str, *, upstream_table: str | None = None
    ) -> None:
        """Record an extract attempt of relation ``table`` of ``source`` and make it the latest.

        Rows are keyed by the relation (the design's name), so two designs over one upstream
        table keep separate rows; ``upstream_table`` says which upstream table it reads.
        Rows written before migration 0004 have none: they are keyed by the upstream table.
        """
        now = format_ts(now_utc())
        with self._session() as db, db.transaction():
            db.execute(
                "INSERT INTO extracts (extract_id, run_id, source, table_name, upstream_table, status, started_at) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (extract_id, run_id, source, table, upstream_table, now),
            )
            db.execute(
                "INSERT INTO extract_state (source, table_name, upstream_table, status, last_extract_id, "
                "last_run_id, started_at) VALUES (?, ?, ?, 'running', ?, ?, ?) "
                "ON CONFLICT (source, table_name) DO UPDATE SET status = excluded.status, "
                "upstream_table = excluded.upstream_table, "
                "last_extract_id = excluded.last_extract_id, last_run_id = excluded.last_run_id, "
                "started_at = excluded.started_at, finished_at = NULL, rows = NULL, bytes = NULL, error = NULL",
                (source, table, upstream_table, extract_id, run_id, now),
            )

    def finish_extract(
        self,
        extract_id: str,
        status: str,
        *,
        rows: int | None = None,
        bytes: int | None = None,
        watermark_low: str | None = None,
        watermark_high: str | None = None,
        manifest_path: str | None = None,
        error: str | None = None,
    ) -> None:
        """Finish an extract attempt and update the table's state.

        Only a ``succeeded`` attempt moves ``last_success_*`` and the watermark (to
        ``watermark_high``); a failed one never touches the watermark. A successful
        attempt without ``watermark_high`` (an incremental extract that found no new rows)
        keeps the previous watermark: use :meth:`reset_watermark` to clear it.

        Raises:
            ValueError: ``status`` is not ``succeeded``, ``failed`` or ``cancelled``.
            TrackingStoreError: there is no such extract.
        """
        check_status(status, EXTRACT_STATUSES - {"running", "abandoned"}, "extract")
        now = now_utc()
        with self._session() as db, db.transaction():
            found = db.query("SELECT source, table_name, started_at FROM extracts WHERE extract_id = ?", (extract_id,))
            if not found:
                raise TrackingStoreError(f'there is no extract "{extract_id}" in the tracking store {self.location}.')
            key = (found[0]["source"], found[0]["table_name"])
            db.execute(
                "UPDATE extracts SET status = ?, finished_at = ?, duration_s = ?, rows = ?, bytes = ?, "
                "watermark_low = ?, watermark_high = ?, manifest_path = ?, error = ? WHERE extract_id = ?",
                (status, format_ts(now), seconds_between(parse_ts(found[0]["started_at"]), now), rows, bytes,
                 watermark_low, watermark_high, manifest_path, error, extract_id),
            )  # fmt: skip
            # a stale attempt finishing late must not overwrite the newer attempt's status
            db.execute(
                "UPDATE extract_state SET status = ?, finished_at = ?, rows = ?, bytes = ?, error = ? "
                "WHERE source = ? AND table_name = ? AND last_extract_id = ?",
                (status, format_ts(now), rows, bytes, error, *key, extract_id),
            )
            if status == "succeeded":
                db.execute(
                    "UPDATE extract_state SET last_success_extract_id = ?, last_success_at = ?, "
                    "watermark = COALESCE(?, watermark) WHERE source = ? AND table_name = ?",
                    (extract_id, format_ts(now), watermark_high, *key),
                )

    def get_extract(self, extract_id: str) -> ExtractRow | None:
        """One extract attempt, or ``None``."""
        with self._session() as db:
            rows = db.query(f"SELECT {EXTRACT_COLUMNS} FROM extracts WHERE extract_id = ?", (extract_id,))
        return row_from(ExtractRow, rows[0]) if rows else None

    def list_extracts(
        self, *, run_id: str | None = None, source: str | None = None, table: str | None = None, limit: int = 50
    ) -> list[ExtractRow]:
        """Extract attempts, newest first, optionally filtered (those of dead runs read ``abandoned``)."""
        self.abandon_dead_runs()
        clause, params = where_clause({"run_id": run_id, "source": source, "table_name": table})
        sql = f"SELECT {EXTRACT_COLUMNS} FROM extracts {clause}ORDER BY started_at DESC, extract_id DESC LIMIT ?"
        with self._session() as db:
            return [row_from(ExtractRow, row) for row in db.query(sql, [*params, limit])]

    def extract_state(self, source: str | None = None, table: str | None = None) -> list[ExtractStateRow]:
        """The state of every extracted table (or of one source, or one table), sorted.

        A table whose latest attempt belonged to a run that died reads ``abandoned``.
        """
        self.abandon_dead_runs()
        clause, params = where_clause({"source": source, "table_name": table})
        sql = f"SELECT {STATE_COLUMNS} FROM extract_state {clause}ORDER BY source, table_name"
        with self._session() as db:
            return [row_from(ExtractStateRow, row) for row in db.query(sql, params)]

    def watermark(self, source: str, table: str) -> str | None:
        """The committed high-water mark of ``source.table`` (a typed JSON string), or ``None``."""
        with self._session() as db:
            rows = db.query("SELECT watermark FROM extract_state WHERE source = ? AND table_name = ?", (source, table))
        return rows[0]["watermark"] if rows else None

    def reset_watermark(self, source: str, table: str) -> None:
        """Forget the watermark of ``source.table`` so that its next extract is a full one."""
        with self._session() as db:
            db.execute("UPDATE extract_state SET watermark = NULL WHERE source = ? AND table_name = ?", (source, table))
