"""Progress reporting: what long work tells whoever watches it.

Kept free of heavy imports, so the CLI can draw progress without loading the engines.
"""

from __future__ import annotations


class Reporter:
    """Receives progress; the base class ignores everything (library use)."""

    def phase(self, name: str, total: int) -> None:
        """A phase (extract, build ...) with ``total`` units of work begins."""

    def started(self, relation: str, step: str) -> None:
        """A unit of work began."""

    def finished(self, relation: str, step: str, status: str, rows: int | None, error: str | None) -> None:
        """A unit of work ended with ``status`` (succeeded, failed, skipped)."""

    def rows(self, relation: str, count: int) -> None:
        """``count`` more rows of ``relation``'s unit of work are done (a long extract's progress)."""

    def message(self, text: str, level: str = "info") -> None:
        """A line for the user."""
