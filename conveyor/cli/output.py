"""Terminal output: progress bars, tables and JSON."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from conveyor.config.secrets import LOG_FILTER, scrub_loggers
from conveyor.reporting import Reporter

console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False, soft_wrap=True)


class RichReporter(Reporter):
    """Draws one progress bar per phase; prints failures (and, with -v, every step)."""

    def __init__(self, verbosity: int = 0):
        self.verbosity = verbosity
        self.progress: Progress | None = None
        self.task: Any = None
        self.counted: frozenset[str] = frozenset()
        self.row_counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichReporter:
        if self.verbosity >= 0 and console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]{task.description:<8}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[current]}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def phase(self, name: str, total: int) -> None:
        # the steps that move this phase's bar: one per relation ("build · production" in a
        # pipeline that loads two environments counts like "build")
        base = name.partition(" · ")[0]
        self.counted = frozenset({"load", "build"} if base == "build" else {base})
        if self.progress is not None:
            self.task = self.progress.add_task(name, total=total, current="")
        elif self.verbosity > 0:
            console.print(f"[bold]{name}[/]: {total} to do")

    def started(self, relation: str, step: str) -> None:
        if self.progress is not None and self.task is not None:
            # "*" is the whole warehouse (publish, commit): name the step instead
            self.progress.update(self.task, current=step if relation == "*" else relation)

    def finished(self, relation: str, step: str, status: str, rows: int | None, error: str | None) -> None:
        with self.lock:
            base = step.partition(" · ")[0]
            counted = base in self.counted or (status == "skipped" and base != "test")
            if self.progress is not None and self.task is not None and counted:
                self.progress.advance(self.task)
            if status == "failed":
                console.print(f"[red]✗ {step} {relation}[/]: {escape(error or '')}")
            elif status == "warned" and self.verbosity > 0:
                console.print(f"[yellow]! {step} {relation}[/]: {escape(error or '')}")
            elif status == "skipped" and (self.verbosity > 0 or (self.verbosity == 0 and base != "test")):
                console.print(f"[yellow]- skipped {relation}[/]: {escape(error or '')}")
            elif self.verbosity > 0:
                shown = f" ({rows:,} rows)" if rows is not None else ""
                console.print(f"[green]✓[/] {step} {relation}{shown}")

    def rows(self, relation: str, count: int) -> None:
        if self.progress is None or self.task is None:
            return
        with self.lock:
            self.row_counts[relation] = self.row_counts.get(relation, 0) + count
            self.progress.update(self.task, current=f"{relation} {self.row_counts[relation]:,} rows")

    def message(self, text: str, level: str = "info") -> None:
        if self.verbosity >= 0 or level != "info":
            console.print(text)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (like logging's last resort)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def configure_logging(level: int = logging.WARNING, fmt: str = "%(message)s") -> None:
    """Send log records to stderr through one handler that scrubs secrets from every record.

    Called by every command (warnings only) and by the scheduler (INFO, with times). The HTTP
    clients' INFO lines (one per request, with its URL) are not wanted at any level.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.addFilter(LOG_FILTER)
        root.addHandler(handler)
    handler.setFormatter(logging.Formatter(fmt))
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # psycopg warns of errors it ignored while closing a COPY on a lost connection; the
    # command reports the error that lost it
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    scrub_loggers()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


#: columns of free text that may wrap to fit a terminal; every other column (ids, names, numbers,
#: times) is printed whole, whatever the width
FLEXIBLE = frozenset({"error", "depends on", "description", "note", "watermark", "why"})


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None = None,
    *,
    flexible: frozenset[str] = FLEXIBLE,
    drop_empty: bool = True,
) -> None:
    """A table for people: a rich table on a terminal, aligned plain text in a pipe or a file.

    Nothing that identifies or counts is ever cut: such columns keep their full width and the
    ``flexible`` ones (free text such as an error) wrap instead; when even the fixed columns
    are wider than the terminal, the terminal wraps the lines. With ``drop_empty``, a flexible
    column empty in every row is left out.
    """
    from conveyor.cli.plain import aligned, numeric_columns

    cells = [["" if v is None else str(v) for v in row] for row in rows]
    # a column of free text that is empty in every row says nothing
    keep = [i for i, c in enumerate(columns) if c not in flexible or any(row[i] for row in cells)]
    if drop_empty and cells and len(keep) < len(columns):
        columns = [columns[i] for i in keep]
        cells = [[row[i] for i in keep] for row in cells]
    widths = [max([len(column), *(len(row[index]) for row in cells)]) for index, column in enumerate(columns)]
    fixed = sum(w + 3 for w, c in zip(widths, columns, strict=True) if c not in flexible)
    flexible_min = sum(min(w, 24) + 3 for w, c in zip(widths, columns, strict=True) if c in flexible)
    if not stdout.is_terminal or fixed + flexible_min > stdout.width:
        # in a pipe, or too wide for the terminal: plain lines, which the terminal wraps whole
        if title:
            sys.stdout.write(title + "\n")
        sys.stdout.write(aligned(columns, cells, bold=stdout.is_terminal and not stdout.no_color))
        sys.stdout.flush()
        return
    right = numeric_columns(cells, len(columns))
    table = Table(title=title, show_edge=False, header_style="bold")
    for index, column in enumerate(columns):
        justify: Literal["left", "right"] = "right" if index in right else "left"
        if column in flexible:
            table.add_column(column, overflow="fold", ratio=1, justify=justify, min_width=min(widths[index], 24))
        else:
            table.add_column(column, no_wrap=True, min_width=widths[index], justify=justify)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # text as it is: a "[name]" is not markup
    stdout.print(table)


def first_line(error: str | None) -> str:
    """An error's first line, whole (a table wraps it); "…" says that more follows (JSON has all)."""
    lines = (error or "").strip().splitlines()
    return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""
