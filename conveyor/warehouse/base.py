"""The interface every warehouse implements.

A load is a :class:`Build`: relations are created in a staging area that readers cannot
see, checked, and then published in one atomic step (or abandoned, leaving the previous
warehouse untouched). How staging and publishing work is the engine's business; the
orchestration asks capability flags, never the engine's name.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from conveyor.design.models import TableDesign
from conveyor.design.types import SqlType
from conveyor.errors import LoadError
from conveyor.lake.manifest import Manifest
from conveyor.warehouse.sqltext import literal, qualified, quote

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Build",
    "KeyViolation",
    "Transaction",
    "Warehouse",
    "check_output_columns",
    "key_constraints",
    "literal",
    "output_select",
    "qualified",
    "quote",
    "unchecked_not_null",
]


@dataclass(frozen=True)
class KeyViolation:
    """A constraint that does not hold, with up to five offending values."""

    relation: str
    constraint: str
    columns: tuple[str, ...]
    examples: tuple[str, ...]
    count: int

    def describe(self) -> str:
        shown = ", ".join(self.examples)
        cols = ", ".join(self.columns)
        if self.constraint == "not_null":
            return f"{self.relation}: column {cols} has {self.count} NULL value(s) but is declared not_null"
        return f"{self.relation}: {self.constraint} ({cols}) has {self.count} duplicate value(s), e.g. {shown}"


@dataclass(frozen=True)
class QueryResult:
    """What :meth:`Warehouse.query` returns: column names, rows (Python values: ``Decimal``,
    aware ``datetime`` ...), and whether rows beyond the limit were left out."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    more: bool


def key_constraints(design: TableDesign) -> list[tuple[str, list[str]]]:
    """(constraint, columns) for every key a build checks: primary, unique and natural keys."""
    keys: list[tuple[str, list[str]]] = []
    if design.constraints.primary_key:
        keys.append(("primary_key", design.constraints.primary_key))
    keys.extend(("unique", cols) for cols in design.constraints.unique)
    if design.constraints.natural_key:
        keys.append(("natural_key", design.constraints.natural_key))
    return keys


def check_output_columns(design: TableDesign, produced: Sequence[str]) -> None:
    """A CTAS whose design lists columns must produce exactly those, in order (skipped ones are never
    in the warehouse); with ``partial_columns`` it must produce each listed one, in any order. Every
    engine checks it the same way before it creates the table."""
    expected = [c.name for c in design.loaded_columns]
    if design.partial_columns:
        missing = [name for name in expected if name not in produced]
        if missing:
            raise LoadError(
                f'the design of "{design.name}" lists ({", ".join(missing)}), but its SQL does not produce '
                f"{'it' if len(missing) == 1 else 'them'}; it produces ({', '.join(produced)}).",
                hint="Fix the names in the design or alias the expressions in the SELECT list.",
            )
        return
    if list(produced) != expected:
        raise LoadError(
            f'the SQL of "{design.name}" produces columns ({", ".join(produced)}) '
            f"but the design lists ({', '.join(expected)}).",
            hint="Make the SELECT list and the design's columns agree, in the same order "
            "(or set partial_columns: true to list only some of them).",
        )


def output_select(design: TableDesign, sql: str, produced: Sequence[str], dialect: str) -> str:
    """The query a CTAS is built from, after checking its columns against the design.

    A partially documented design casts its listed columns that have a type, in place (the
    others keep the type the warehouse infers); otherwise the query is used as written.
    """
    check_output_columns(design, produced)
    typed = {c.name: c for c in design.loaded_columns if c.type} if design.partial_columns else {}
    if not typed:
        return sql
    from conveyor.warehouse import render_type

    def column(name: str) -> str:
        found = typed.get(name)
        if found is None:
            return f"shaped.{quote(name)}"
        spelled = render_type(found.sql_type, dialect, column=name, design=design.name)
        return f"CAST(shaped.{quote(name)} AS {spelled}) AS {quote(name)}"

    return f"SELECT {', '.join(column(name) for name in produced)}\nFROM (\n{sql}\n) AS shaped"


def unchecked_not_null(design: TableDesign) -> list[str]:
    """Columns that must hold no NULL but whose DDL does not say so (CTAS without typed columns)."""
    if design.typed:
        return []
    declared = [c.name for c in design.loaded_columns if c.not_null]
    return declared + [c for c in design.constraints.primary_key if c not in declared]


class Build(ABC):
    """Relations built into staging, then published atomically or abandoned."""

    def fetch(self, sql: str, limit: int) -> QueryResult:
        """Run a read-only query inside the build (names as ``staged`` gives them); at most ``limit`` rows.

        Data tests read the staging copies through it before anything is published.

        Raises:
            LoadError: the query failed.
        """
        raise LoadError(f"{type(self).__name__} cannot run queries inside a build.")

    def staged(self, name: str) -> str:
        """Where relation ``name`` ("schema.table") lives during the build.

        Engines that stage into other schemas (PostgreSQL's ``schema$staging``) return that
        name, and the load layer rewrites SQL to read from it. The default builds in place.
        """
        return name

    @contextmanager
    def binding(self, schemas: Sequence[str]) -> Iterator[None]:
        """Statements run inside, on this thread, look unqualified names up in ``schemas`` first.

        ``schemas`` are the project's names (a relation's own schema, then ``search_path``);
        the engine searches them where this build keeps them (``staged``). Queries whose
        names Conveyor could not bind itself (SQL sqlglot cannot parse) rely on it.
        """
        local = self._binding_local()
        previous = getattr(local, "schemas", ())
        local.schemas = tuple(schemas)
        try:
            yield
        finally:
            local.schemas = previous

    def bound_schemas(self) -> tuple[str, ...]:
        """The schemas of the innermost ``binding`` on this thread, named as this build keeps them."""
        schemas = getattr(self._binding_local(), "schemas", ())
        return tuple(dict.fromkeys(self.staged(f"{schema}.x").rpartition(".")[0] for schema in schemas))

    def _binding_local(self) -> threading.local:
        local = self.__dict__.get("_binding")
        if local is None:
            local = self.__dict__.setdefault("_binding", threading.local())
        return local

    @abstractmethod
    def load_table(self, design: TableDesign, manifest: Manifest) -> int:
        """Create a source table from a committed extract; returns rows loaded."""

    def merge_table(self, design: TableDesign, manifest: Manifest) -> int:
        """Apply an incremental extract to a loaded table: replace rows by primary key, add new ones.

        Without a primary key the rows are appended. Returns the rows written.
        """
        from conveyor.errors import WarehouseError

        raise WarehouseError(f"{type(self).__name__} cannot merge incremental extracts yet.")

    def load_chain(self, design: TableDesign, manifests: Sequence[Manifest]) -> int:
        """Load a full extract and apply the incremental extracts after it, in order."""
        rows = self.load_table(design, manifests[0])
        for manifest in manifests[1:]:
            rows += self.merge_table(design, manifest)
        return rows

    @abstractmethod
    def create_table(self, design: TableDesign, sql: str) -> int:
        """Create a CTAS relation from a SELECT; returns rows."""

    @abstractmethod
    def create_view(self, design: TableDesign, sql: str) -> None:
        """Create a view from a SELECT."""

    @abstractmethod
    def check(self, design: TableDesign) -> list[KeyViolation]:
        """Check primary key, unique and natural key constraints of a built table."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Drop a relation from staging if it is there (a leftover of a failed build)."""

    @abstractmethod
    def publish(self) -> None:
        """Make every relation of the build visible at once."""

    @abstractmethod
    def abort(self) -> None:
        """Throw the staging area away; the published warehouse stays as it was."""

    def suspend(self) -> None:
        """Leave the staging area for a later ``--resume`` (the published warehouse is untouched).

        Engines that cannot keep a build throw it away.
        """
        self.abort()


class Transaction(Build):
    """Changes made directly to the published warehouse (``update`` and ``upgrade``).

    ``publish()`` commits and ``abort()`` rolls back. When the transaction is atomic (update),
    every change becomes visible at once or not at all; otherwise (upgrade, for development)
    each statement commits on its own.
    """

    def ensure_schema(self, schema: str) -> None:
        """Create a schema if it does not exist (``upgrade --into-schema``)."""
        raise NotImplementedError

    def lock(self, names: Sequence[str]) -> None:
        """Take, before changing anything, every lock that changing relations ``names`` needs.

        Taking them all at once, in a fixed order, keeps two waiting transactions from each
        holding what the other waits for. Engines that lock the whole warehouse when the
        transaction opens (DuckDB) have nothing more to do.
        """

    @abstractmethod
    def replace_rows(self, design: TableDesign, manifests: Sequence[Manifest]) -> int:
        """Replace all rows of a source table with an extract chain (creating it if missing)."""

    @abstractmethod
    def refresh(self, design: TableDesign, sql: str) -> int:
        """Recompute a CTAS relation in place (creating it if missing); returns rows."""


class Warehouse(ABC):
    """A warehouse target (one environment)."""

    ENGINE: ClassVar[str] = ""
    """Name used in conveyor.yaml (``type: duckdb``)."""
    DIALECT: ClassVar[str] = ""
    """sqlglot dialect of transformations and generated DDL."""
    PUBLISH: ClassVar[str] = ""
    """How a build becomes visible: ``file_swap`` or ``schema_swap``."""
    OPERATIONS: ClassVar[frozenset[str]] = frozenset({"load", "update", "upgrade", "unload"})
    """What the engine can run against the warehouse; :meth:`require` refuses the others up front."""

    MAX_DECIMAL_PRECISION: ClassVar[int] = 38
    """The widest ``decimal(p,s)`` a column can have; every engine holds at least 38."""

    @classmethod
    def type_problem(cls, sql_type: SqlType) -> str | None:
        """Why a column of this design type cannot be created here, or None when it can."""
        element = sql_type.element
        if element.name == "decimal" and (element.precision or 0) > cls.MAX_DECIMAL_PRECISION:
            return f"{cls.ENGINE} holds decimals up to decimal({cls.MAX_DECIMAL_PRECISION},s)"
        return None

    def __init__(self, name: str, dsn: str):
        self.name = name
        self.dsn = dsn

    @classmethod
    def render_type(cls, sql_type: SqlType, *, column: str = "", design: str = "") -> str:
        """How this warehouse spells a design type in DDL and casts (``column``/``design`` name errors).

        Engines whose spelling is not :meth:`SqlType.render` of their dialect override it.
        """
        return sql_type.render(cls.DIALECT)

    def require(self, operation: str) -> None:
        """Refuse an operation this engine cannot run, before anything is written.

        Raises:
            UserError: (exit code 2) naming the operation and what is missing.
        """
        if operation not in self.OPERATIONS:
            from conveyor.errors import UserError

            message, hint = self.unsupported(operation)
            raise UserError(message, hint=hint)

    def unsupported(self, operation: str) -> tuple[str, str]:
        """(message, hint) saying why ``operation`` is not available on this engine."""
        return (
            f'{operation} is not supported on the {self.ENGINE} environment "{self.name}".',
            "See docs/warehouses.md for what each warehouse supports.",
        )

    @abstractmethod
    def begin(
        self, schemas: Sequence[str], *, run_id: str, keep_schemas: bool = True, resume_from: str | None = None
    ) -> Build:
        """Start a build that replaces ``schemas`` entirely.

        Schemas of the published warehouse that are not rebuilt are kept as they are when
        ``keep_schemas`` is true. ``resume_from`` names the run whose suspended staging area
        this build continues; a ``WarehouseError`` says so when it is gone.
        """

    def kept_build(self, run_id: str) -> bool | None:
        """Whether the unpublished build of run ``run_id`` is still kept for a resume (None: cannot tell).

        A run killed while publishing left either its kept build (the publish never happened)
        or none (it did): this tells ``load --resume`` which.
        """
        return None

    def transaction(
        self,
        *,
        run_id: str,
        atomic: bool = True,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ) -> Transaction:
        """Open the published warehouse for in-place changes (``update``, ``upgrade``).

        A load, update or upgrade of the same warehouse (or, where the engine locks per
        schema, of the same schemas) excludes this one: it is waited for, at most
        ``lock_timeout_s`` seconds, and ``waiting`` is told what it waits for. After that a
        ``WarehouseError`` says who holds the warehouse.
        """
        from conveyor.errors import WarehouseError

        raise WarehouseError(f"{type(self).__name__} cannot change relations in place yet.")

    @abstractmethod
    def relations(self) -> dict[str, str]:
        """Published relations: "schema.name" -> "table" or "view"."""

    def table_ddl(self, design: TableDesign) -> list[str]:
        """CREATE TABLE (with keys) and COMMENT statements for a design, in this warehouse's dialect."""
        from conveyor.warehouse import ddl

        return [ddl.create_table(design, self.DIALECT, keys=True), *ddl.comments(design)]

    def ctas_ddl(self, design: TableDesign, select: str) -> list[str]:
        """CREATE TABLE ... AS and COMMENT statements for a CTAS design without typed columns."""
        from conveyor.warehouse import ddl

        return [f"CREATE TABLE {qualified(design.name)} AS\n{select}", *ddl.comments(design)]

    def read_relation(self, name: str, batch_rows: int = 65_536) -> AbstractContextManager[pa.RecordBatchReader]:
        """Open a published relation as an Arrow stream in the lake's exact types (for unload)."""
        from conveyor.errors import WarehouseError

        raise WarehouseError(f"{type(self).__name__} cannot unload relations yet.")

    def query(self, sql: str, limit: int) -> QueryResult:
        """Run one read-only query against the published warehouse; at most ``limit`` rows.

        Raises:
            WarehouseError: the engine cannot run queries here, or the query failed.
        """
        from conveyor.errors import WarehouseError

        raise WarehouseError(
            f'the {self.ENGINE} environment "{self.name}" cannot be queried from Conveyor.',
            hint="Use the warehouse's own client.",
        )

    @abstractmethod
    def describe(self) -> str:
        """A short human description of where the warehouse is (no secrets)."""
