"""One small table on SQLite, PostgreSQL or MariaDB, read back by its own driver.

Shared by the incremental tests of the inclusive watermark: ``t(k, payload, c)`` with an
optional primary key on ``k`` and a cursor ``c`` that is an integer or a second-precision
timestamp (the kind of cursor whose values collide with the watermark all the time).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

BASE = datetime(2024, 3, 1, 12, 0, 0)
Row = tuple[int, str | None, int]  # (k, payload, cursor as an integer: seconds after BASE for timestamps)


@dataclass
class Table:
    """``t(k, payload, c)`` in one upstream database, written and read with that engine's driver."""

    engine: str
    name: str
    schema: str
    run: Callable[..., list[tuple[Any, ...]]]
    timestamp: bool
    key: bool

    @property
    def mark(self) -> str:
        return "?" if self.engine == "sqlite" else "%s"

    def quote(self, name: str) -> str:
        return f"`{name}`" if self.engine == "mysql" else f'"{name}"'

    def create(self) -> None:
        cursor = {"sqlite": "TEXT", "postgres": "timestamp(0)", "mysql": "datetime"}[self.engine]
        cursor = cursor if self.timestamp else "bigint"
        key = " PRIMARY KEY" if self.key else ""
        self.run(f"CREATE TABLE {self.quote(self.name)} (k integer{key}, payload varchar(20), c {cursor} NOT NULL)")

    def value(self, cursor: int) -> Any:
        if not self.timestamp:
            return cursor
        stamp = BASE + timedelta(seconds=cursor)
        return stamp.isoformat(" ") if self.engine == "sqlite" else stamp

    def insert(self, rows: Sequence[Row]) -> None:
        for k, payload, cursor in rows:
            self.run(
                f"INSERT INTO {self.quote(self.name)} VALUES ({self.mark}, {self.mark}, {self.mark})",
                (k, payload, self.value(cursor)),
            )

    def update(self, k: int, payload: str | None, cursor: int) -> None:
        self.run(
            f"UPDATE {self.quote(self.name)} SET payload = {self.mark}, c = {self.mark} WHERE k = {self.mark}",
            (payload, self.value(cursor), k),
        )

    def rows(self) -> list[Row]:
        """Every upstream row, as the engine's own driver returns it, normalized and sorted."""
        found = self.run(f"SELECT k, payload, c FROM {self.quote(self.name)}")
        return sorted((int(k), p, self.cursor_of(c)) for k, p, c in found)

    def cursor_of(self, value: Any) -> int:
        if not self.timestamp:
            return int(value)
        stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
        return int((stamp - BASE).total_seconds())

    def design(self, lag: int | None = None) -> dict[str, Any]:
        incremental: dict[str, Any] = {"cursor": "c"}
        if lag is not None:
            incremental["lag"] = f"{lag} seconds" if self.timestamp else lag
        return {
            "source_table": f"{self.schema}.{self.name}",
            "columns": [
                {"name": "k", "type": "integer"},
                {"name": "payload", "type": "text"},
                {"name": "c", "type": "timestamp" if self.timestamp else "bigint"},
            ],
            "constraints": {"primary_key": ["k"]} if self.key else {},
            "extract": {"incremental": incremental},
        }

    def loaded(self, root: Path, relation: str = "up.t") -> list[Row]:
        """The warehouse's rows of ``relation`` (DuckDB), normalized like :meth:`rows`."""
        con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
        try:
            found = con.execute(f"SELECT k, payload, c FROM {relation}").fetchall()
        finally:
            con.close()
        return sorted((int(k), p, self.cursor_of(c)) for k, p, c in found)


def sqlite_runner(path: Path) -> Callable[..., list[tuple[Any, ...]]]:
    def run(statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(path)
        try:
            found = con.execute(statement, params).fetchall()
            con.commit()
            return found
        finally:
            con.close()

    return run
