"""The interface every upstream engine implements.

A source reflects its catalog into :class:`TableInfo` (columns in the design type
vocabulary, keys, a size estimate) and reads a table as a stream of Arrow record batches
whose schema is exactly the one the design asks for. Engines are thin subclasses that set
capability flags; the extract layer asks the flags, never the engine's name.
"""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from conveyor.design.types import SqlType
from conveyor.sources.verdict import Verdict, read_verdict

if TYPE_CHECKING:
    import pyarrow as pa

#: rows per Arrow batch read from an upstream cursor; bounds memory per worker
DEFAULT_BATCH_ROWS = 65_536
#: bytes a source may decode ahead of its reader (see ``ReadRequest.buffer_bytes``)
DEFAULT_BUFFER_BYTES = 16 << 20


@dataclass(frozen=True)
class ColumnInfo:
    """One upstream column as the catalog describes it."""

    name: str
    type: SqlType | None
    """The exact design type; None when the native type has none (see ``text_form``)."""
    native_type: str
    not_null: bool = False
    comment: str | None = None
    """The upstream column comment, when the engine has one (bootstrap makes it the description)."""
    text_form: str | None = None
    """For a column without an exact design type: what ``type: text`` reads, when that is a
    faithful text form of every value (e.g. ``PostgreSQL's text form of interval``); None
    when there is none and the column can only be skipped."""
    may_read_null: bool = False
    """The read may give NULL although the column is NOT NULL upstream (MySQL zero dates
    under the source's ``zero_dates: null``), so a design must not say not_null."""


@dataclass(frozen=True)
class TableInfo:
    """One upstream table: its columns, keys and a size estimate for planning."""

    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    row_estimate: int | None = None
    comment: str | None = None
    """The upstream table comment, when the engine has one (bootstrap makes it the description)."""

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class ReadRequest:
    """What to read from one table: the columns (with their design types) and a filter.

    ``where`` is SQL in the source's dialect, built by the extract layer from the design's
    ``condition``, the incremental cursor and a partition range; ``params`` are bound to it.
    """

    schema: str
    table: str
    columns: tuple[tuple[str, SqlType], ...]
    where: str | None = None
    params: tuple[object, ...] = ()
    batch_rows: int = DEFAULT_BATCH_ROWS
    order_by: tuple[str, ...] = field(default=())
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    """What a source whose driver decodes on a thread of its own may hold ahead of the
    batches taken from it (MySQL's connectorx), in bytes of the server's wire format."""

    @property
    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(name, sql_type.arrow) for name, sql_type in self.columns])


class Source(ABC):
    """An upstream database. Subclasses set the flags and implement the four methods."""

    ENGINE: ClassVar[str] = ""
    """Name used in ``conveyor.yaml`` (``type: postgres``)."""
    DIALECT: ClassVar[str] = ""
    """sqlglot dialect used to quote identifiers and render filters."""
    DEFAULT_SCHEMA: ClassVar[str | None] = None
    """Schema assumed when a design's ``source_table`` names only a table."""
    SUPPORTS_SNAPSHOT: ClassVar[bool] = False
    """Partitions of one table can read one consistent snapshot."""
    SUPPORTS_CTID: ClassVar[bool] = False
    """Tables without a split key can be split by physical row ranges."""
    SUPPORTS_SPLIT: ClassVar[bool] = True
    """Tables can be split into partitions by a key (``min_max`` and ``quantiles`` work)."""
    PLACEHOLDER: ClassVar[str] = "%s"
    """How ``ReadRequest.where`` marks a bound parameter."""
    FILES_IN_PROJECT: ClassVar[bool] = False
    """The tables are files of the project (seeds): ``validate`` checks every value against the
    design instead of comparing catalogs, and ``load`` extracts a table whose file changed."""
    CURSOR_BOUND_EXACT: ClassVar[bool] = True
    """:meth:`cursor_bound` compares exactly. When False it may also let through rows a little
    below the bound (never drop one above it), and the extract removes those after reading."""

    def __init__(self, name: str, dsn: str):
        self.name = name
        self.dsn = dsn
        self.zero_dates = "null"
        """What a read does with a MySQL zero date: ``null`` (read as NULL) or ``error``."""
        self.root: Path | None = None
        """The project folder (sources whose tables are files of the project name them relative to it)."""
        self.notices: list[str] = []
        """Warnings of this source's reads (e.g. zero dates read as NULL), for the run and the manifest."""

    @abstractmethod
    def list_tables(self) -> list[tuple[str, str]]:
        """Every (schema, table) the connection can see, system schemas excluded."""

    @abstractmethod
    def describe(self, schema: str, table: str) -> TableInfo:
        """Reflect one table; raises ``ExtractError`` if it does not exist."""

    @abstractmethod
    def read(self, request: ReadRequest, *, snapshot: str | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the rows as batches whose schema equals ``request.arrow_schema``.

        ``snapshot`` is an id from :meth:`snapshot` (engines with ``SUPPORTS_SNAPSHOT``): every
        partition read with the same id sees the same consistent state of the database.
        """

    def read_verdict(self, column: ColumnInfo, target: SqlType) -> Verdict:
        """Whether :meth:`read` reads ``column`` as design type ``target``; see :func:`read_verdict`.

        The one decision both the read (which refuses a ``mismatch`` before reading) and
        ``conveyor validate`` use. Engines extend it with what their server renders.
        """
        if column.type is None:
            return "mismatch"
        return read_verdict(column.type, target)

    def literal(self, value: object) -> str:
        """``value`` as a SQL literal of this engine (for engines that inline parameters)."""
        raise NotImplementedError(f"{type(self).__name__} binds parameters instead")

    def inline(self, where: str | None, params: Sequence[object]) -> str | None:
        """``where`` with each ``PLACEHOLDER`` replaced by its parameter as a literal.

        Engines whose readers take no bound parameters (ADBC's COPY, connectorx) use a
        placeholder that cannot occur in SQL, so a ``%`` in a name or in a user's condition
        is never mistaken for one.
        """
        if not where or not params:
            return where
        pieces = where.split(self.PLACEHOLDER)
        if len(pieces) != len(params) + 1:
            raise ValueError(f"{len(pieces) - 1} placeholders but {len(params)} parameters in: {where}")
        text = pieces[0]
        for value, piece in zip(params, pieces[1:], strict=True):
            text += self.literal(value) + piece
        return text

    def default_schema(self) -> str | None:
        """The schema of a table named without one (``DEFAULT_SCHEMA`` unless the DSN says)."""
        return self.DEFAULT_SCHEMA

    def column_names(self, schema: str, table: str) -> list[str] | None:
        """The table's column names from the catalog (None: the engine cannot list them cheaply).

        Raises ``ExtractError`` when the table does not exist.
        """
        return None

    @staticmethod
    def column_key(name: str) -> str:
        """What two column names must share to name the same column (engines that ignore case fold it)."""
        return name

    def row_estimate(self, schema: str, table: str) -> int | None:
        """Roughly how many rows a table has (for the automatic partition count)."""
        return self.describe(schema, table).row_estimate

    def snapshot(self) -> AbstractContextManager[str | None]:
        """Hold a snapshot that other connections can read; yields its id (None: not supported)."""
        return nullcontext(None)

    def min_max(
        self, schema: str, table: str, column: str, where: str | None = None, params: tuple[object, ...] = ()
    ) -> tuple[Any, Any]:
        """``(min, max)`` of a column (for range partitions)."""
        raise NotImplementedError(f"{type(self).__name__} cannot split tables")

    def quantiles(self, schema: str, table: str, column: str, n: int) -> list[Any]:
        """Up to ``n - 1`` sorted, distinct cut points splitting a column into ``n`` similar parts."""
        raise NotImplementedError(f"{type(self).__name__} cannot split tables")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor_bound(self, column: str, sql_type: SqlType) -> str:
        """The predicate ``column >= bound`` of an incremental read, with one ``PLACEHOLDER`` for the bound."""
        return f"{self.quote(column)} >= {self.PLACEHOLDER}"

    def quote(self, identifier: str) -> str:
        """Quote one identifier for this engine (doubling embedded quote characters)."""
        return '"' + identifier.replace('"', '""') + '"'

    def matching_tables(self, include: Sequence[str], exclude: Sequence[str]) -> list[tuple[str, str]]:
        """Tables whose ``schema.table`` matches an include glob and no exclude glob."""
        found = []
        for schema, table in self.list_tables():
            qualified = f"{schema}.{table}"
            if any(fnmatch.fnmatchcase(qualified, p) for p in include) and not any(
                fnmatch.fnmatchcase(qualified, p) for p in exclude
            ):
                found.append((schema, table))
        return sorted(found)
