"""Seeds: CSV files of the project as a source (``type: seed``), typed by their designs.

``dsn`` is a folder of the project, by convention ``seeds/<schema>``; a table is the file
``<dsn>/<table>.csv`` (``source_table: other`` reads ``other.csv``; ``sub.other`` reads
``sub/other.csv``). A seed goes through the lake like any source table: an extract parses
the whole file (:mod:`conveyor.sources.seedcsv`) into one Parquet part and records the
file's content hash as its query, and a load rebuilds from the lake. ``conveyor load``
extracts a seed first when its file changed since its newest extract
(:mod:`conveyor.extract.seeds`); ``conveyor validate`` parses every value against the
design (:mod:`conveyor.validate.seeds`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.design.types import SqlType
from conveyor.errors import ExtractError
from conveyor.sources.base import ColumnInfo, ReadRequest, Source, TableInfo
from conveyor.sources.seedcsv import SeedColumn, digest, header, parse_seed, read_bytes
from conveyor.sources.verdict import Verdict

if TYPE_CHECKING:
    import pyarrow as pa

SUFFIX = ".csv"


def seed_path(folder: Path, schema: str | None, table: str) -> Path:
    """The CSV file of a seed table in the source folder ``folder``."""
    return (folder / schema / (table + SUFFIX)) if schema else folder / (table + SUFFIX)


class SeedSource(Source):
    """CSV files in a folder of the project, read value by value as their designs' types."""

    ENGINE = "seed"
    DIALECT = "duckdb"
    DEFAULT_SCHEMA = None
    SUPPORTS_SNAPSHOT = False
    SUPPORTS_CTID = False
    SUPPORTS_SPLIT = False
    FILES_IN_PROJECT = True

    def __init__(self, name: str, dsn: str):
        super().__init__(name, dsn)
        self.folder = Path(dsn.removeprefix("seed://"))
        self.digests: dict[str, str] = {}
        """The content hash of each file, taken before it is read (``select_sql`` records it)."""

    def display(self, path: Path) -> str:
        """The file as errors name it: relative to the project when it is inside it."""
        root = self.root
        if root is not None:
            try:
                return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)
            except ValueError:
                return str(path)
        return str(path)

    def _path(self, schema: str | None, table: str) -> Path:
        return seed_path(self.folder, schema or None, table)

    def list_tables(self) -> list[tuple[str, str]]:
        if not self.folder.is_dir():
            raise ExtractError(f'the folder of seed source "{self.name}" does not exist: {self.folder}.')
        found = [("", p.name.removesuffix(SUFFIX)) for p in self.folder.iterdir() if p.name.endswith(SUFFIX)]
        return sorted(found)

    def column_names(self, schema: str, table: str) -> list[str]:
        path = self._path(schema, table)
        data = read_bytes(path, self.display(path))
        self.digests[str(path)] = digest(data)
        return header(data, self.display(path))[0]

    def describe(self, schema: str, table: str) -> TableInfo:
        """The header's columns, each typed by what its values look like (for bootstrap)."""
        path = self._path(schema, table)
        data = read_bytes(path, self.display(path))
        names, rows = header(data, self.display(path))
        values: list[list[str | None]] = [[] for _ in names]
        count = 0
        for record in rows:
            count += 1
            for index, text in enumerate(record.fields[: len(names)]):
                values[index].append(text)
        columns = []
        for name, column in zip(names, values, strict=True):
            sql_type = guess_type([v for v in column if v is not None])
            not_null = bool(column) and all(v is not None for v in column)
            columns.append(ColumnInfo(name, sql_type, "csv", not_null))
        return TableInfo(schema, table, tuple(columns), row_estimate=count)

    def read_verdict(self, column: ColumnInfo, target: SqlType) -> Verdict:
        """Any column reads as any type: every value is parsed as the design's type, and checked."""
        return "narrowing"

    def read(self, request: ReadRequest, *, snapshot: str | None = None) -> Iterator[pa.RecordBatch]:
        if request.where:
            raise ExtractError(
                f'the seed source "{self.name}" cannot filter rows ({request.where}).',
                hint="Remove extract.condition and extract.incremental from the design.",
            )
        path = self._path(request.schema, request.table)
        columns = [SeedColumn(name, sql_type) for name, sql_type in request.columns]
        # NOT NULL is the warehouse's to check at load, as for every source table
        table = parse_seed(read_bytes(path, self.display(path)), self.display(path), columns, check_not_null=False)
        yield from table.to_batches(max_chunksize=request.batch_rows)

    def select_sql(self, request: ReadRequest) -> str:
        """What the extract records as its query: the file and the hash of its content."""
        path = self._path(request.schema, request.table)
        return f"{self.display(path)} {self.digests.get(str(path), '')}".strip()


def guess_type(values: list[str]) -> SqlType:
    """The narrowest design type every value parses as exactly (``text`` when nothing else fits)."""
    from conveyor.design.types import parse_type
    from conveyor.sources.seedcsv import converter

    if not values:
        return SqlType("text")
    candidates = ["boolean", "integer", "bigint", "date", "timestamp", "timestamptz"]
    for name in candidates:
        parse = converter(parse_type(name))
        try:
            for value in values:
                parse(value)
        except ValueError:
            continue
        return parse_type(name)
    scale, whole = 0, 0
    for value in values:
        number = value.lstrip("+-")
        left, _, right = number.partition(".")
        if not (left or right) or not (left or "0").isdigit() or (right and not right.isdigit()):
            return SqlType("text")
        scale, whole = max(scale, len(right)), max(whole, len(left.lstrip("0")))
    if whole + scale > 38:
        return SqlType("text")
    return SqlType("decimal", max(whole + scale, 18), scale)  # room for larger values of the same scale
