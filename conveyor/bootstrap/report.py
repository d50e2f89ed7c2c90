"""What bootstrap did (or would do, with ``--dry-run``) to each table's design."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: what happened to one table (``dry_run`` reports what *would* happen)
ACTIONS = ("created", "updated", "unchanged", "exists", "failed", "orphaned")


@dataclass
class TableReport:
    """What bootstrap did (or, in a dry run, would do) for one table design."""

    table: str
    """The design's name, ``<target_schema>.<table>`` (``<target_schema>.*`` when a whole source failed)."""
    source: str
    upstream: str | None
    """The upstream ``schema.table`` (None when a whole source failed)."""
    action: str
    """One of :data:`ACTIONS`."""
    path: Path | None = None
    columns: int | None = None
    """Columns in the design after the run."""
    changes: list[str] = field(default_factory=list)
    """For updates: ``+col``, ``-col``, ``~col type a->b``, ``~col not null``, key changes."""
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    diff: str | None = None
    """In a dry run of an update: the unified diff the update would make to the design file."""

    def to_dict(self, root: Path | None = None, *, dry_run: bool = False) -> dict[str, Any]:
        shown: str | None = None
        if self.path is not None:
            shown = (
                str(self.path.relative_to(root))
                if root is not None and self.path.is_relative_to(root)
                else str(self.path)
            )
        return {
            "table": self.table,
            "source": self.source,
            "upstream": self.upstream,
            "action": self.action,
            "dry_run": dry_run,
            "columns": self.columns,
            "file": shown,
            "changes": list(self.changes),
            "notes": list(self.notes),
            "error": self.error,
            "diff": self.diff,
        }


@dataclass
class BootstrapReport:
    """Every table's outcome, in source and table order, plus warnings for the user."""

    tables: list[TableReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False
    update: bool = False
    root: Path | None = None

    @property
    def failed(self) -> list[TableReport]:
        return [t for t in self.tables if t.action == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def with_action(self, action: str) -> list[TableReport]:
        return [t for t in self.tables if t.action == action]

    def counts(self) -> dict[str, int]:
        """Tables per action, for the actions that occurred (in :data:`ACTIONS` order)."""
        return {a: n for a in ACTIONS if (n := len(self.with_action(a)))}

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_dict(self.root, dry_run=self.dry_run) for t in self.tables]
