"""Tables as plain text: what commands print into a pipe, a file or a log.

Columns are two spaces apart, numbers right-aligned, and nothing is ever cut: an id, a name
or a number is printed whole however wide it is (the terminal, if any, wraps the line). It
imports nothing heavy, so light commands can use it without loading rich.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?( ?(s|ms|%|MiB|MB|rows))?$")


def numeric_columns(rows: Sequence[Sequence[str]], count: int) -> frozenset[int]:
    """The columns whose every non-empty cell is a number (with an optional unit)."""
    found = set()
    for index in range(count):
        cells = [row[index] for row in rows if row[index]]
        if cells and all(_NUMBER.match(cell) for cell in cells):
            found.add(index)
    return frozenset(found)


def aligned(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] | None = None, bold: bool = False
) -> str:
    """``rows`` under ``header`` as text; ``right``: the columns aligned right (default: the numeric ones)."""
    right = numeric_columns(rows, len(header)) if right is None else right
    widths = [len(h) for h in header]
    for row in rows:
        for index, cell in enumerate(row):
            if len(cell) > widths[index]:
                widths[index] = len(cell)
    last = len(header) - 1

    def line(cells: Sequence[str]) -> str:
        parts = []
        for index, cell in enumerate(cells):
            if index in right:
                parts.append(cell.rjust(widths[index]))
            else:
                parts.append(cell if index == last else cell.ljust(widths[index]))
        return "  ".join(parts).rstrip()

    head = line(header)
    if bold:
        head = f"\x1b[1m{head}\x1b[0m"
    return "\n".join([head, *map(line, rows)]) + "\n"
