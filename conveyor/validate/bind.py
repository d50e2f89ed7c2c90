"""Plain ``validate``: bind every query against the designs, in an in-memory DuckDB, without a warehouse.

Every selected CTAS and view, and everything upstream of it, goes through the compiler of
:mod:`conveyor.validate.compiler` with an in-memory DuckDB as its target:

* a source table is an empty table with its design's columns and types;
* a query is bound (``con.sql``: parsed, names and types resolved, nothing run), which finds
  unknown columns, tables and functions and type errors (``'a' + 1``), and gives the output
  columns with their DuckDB types, compared with the design like ``--with-warehouse`` does;
* what a load would create for it is then recorded: a CTAS whose design has typed columns is
  a table of those types (a load inserts into them), any other CTAS or view a table of the
  query's output. Tables are created only when a later query reads them.

Queries are bound as written, in the project's own search path, so DuckDB's positions
(``LINE n`` and its caret) are positions in the ``.sql`` file. A PostgreSQL or Redshift
project's queries are transpiled to DuckDB with sqlglot for binding only: there, only an
unknown column or table is an error; anything else DuckDB refuses (a function it lacks) is a
``not-bound`` note, and its select list is compared by name as without binding.

The connection has no access to files or the network, so a query reading files is not
bound (a note). Results are kept in ``.conveyor/cache/bind.json`` (:mod:`conveyor.validate.bindcache`),
so a second validate binds only the relations whose query, design or inputs changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from conveyor.design.types import parse_type
from conveyor.project import Project, Relation
from conveyor.validate.bindcache import BindCache, Entry
from conveyor.validate.columns import locate_error
from conveyor.validate.compiler import Compiler, Reads, Rejected, Target, Wording, brief, needed, typed
from conveyor.validate.problems import Problem
from conveyor.warehouse.base import qualified, quote
from conveyor.warehouse.dialect import dialect as dialect_of

#: DuckDB error kinds that say the query cannot be checked here, not that it is wrong
_NOT_HERE = ("Permission Error", "IO Error", "HTTP Error", "Extension Error")
#: what DuckDB says of a function or table function of an extension it may not load here
_EXTENSION = ("but it exists in the", "the required extension")
#: DuckDB error kinds that name an unknown column or table (the only errors of transpiled SQL)
_UNKNOWN_NAME = ("Referenced column", "does not have a column named", "Referenced table", "Table with name")
_EXPLAIN = "EXPLAIN "

Signature = list[tuple[str, str]]
"""The columns of a table the binder created: (name, DuckDB type), in order."""


@dataclass
class SqlCheck:
    """What binding found."""

    problems: list[Problem]
    unchecked: set[str]
    """Selected CTAS and views whose output columns binding could not give (no error was reported for them)."""


def check_sql(project: Project, relations: Sequence[Relation], *, cache: bool = True) -> SqlCheck:
    """Bind ``relations`` (and what they read) in an in-memory DuckDB; problems of ``relations`` only."""
    order = [project.relations[n] for n in project.dag.order(needed(project, relations))]
    reads = Reads(project)
    target = MemoryTarget(project, reads)
    compiler = Compiler(project, target, {r.name for r in order}, reads)
    store = BindCache(project, enabled=cache)
    try:
        for relation in order:
            _bind(relation, compiler, target, store)
    finally:
        target.close()
    store.save(prune=len(order) == len(project.relations))  # a selection keeps the others' entries
    selected = {r.name for r in relations}
    done = compiler.described | compiler.refused
    return SqlCheck(
        [p for p in compiler.problems if p.relation in selected],
        {r.name for r in relations if r.kind != "source" and r.name not in done},
    )


def _bind(relation: Relation, compiler: Compiler, target: MemoryTarget, store: BindCache) -> None:
    """Bind one relation, or take its result from the cache when nothing it depends on changed."""
    if relation.kind == "source":
        compiler.compile(relation)
        return
    inputs = [(name, target.tables.get(name), compiler.missing.get(name)) for name in compiler.reads(relation)]
    key = store.key(relation, inputs)
    entry = store.get(key)
    if entry is not None:
        _restore(relation.name, entry, compiler, target)
        return
    before = len(compiler.problems)
    compiler.compile(relation)
    name = relation.name
    state = next((s for s, names in _states(compiler) if name in names), "")
    store.put(key, Entry(target.tables.get(name), compiler.missing.get(name), state, compiler.problems[before:]))


def _restore(name: str, entry: Entry, compiler: Compiler, target: MemoryTarget) -> None:
    compiler.problems.extend(entry.problems)
    if entry.table is not None:
        target.tables[name] = entry.table
        compiler.made.add(name)
    else:
        compiler.missing[name] = entry.why or "it was not checked"
    for state, names in _states(compiler):
        if entry.state == state:
            names.add(name)


def _states(compiler: Compiler) -> list[tuple[str, set[str]]]:
    """The sets of the compiler a relation's cache entry records it in."""
    return [("described", compiler.described), ("refused", compiler.refused), ("quiet", compiler.quiet)]


class MemoryTarget(Target):
    """An in-memory DuckDB, connected on first use; tables are created when a query reads them."""

    wording = Wording("sql", "bind-failed", "not-bound", "bound", "the in-memory warehouse", exact=True)
    dialect = "duckdb"

    def __init__(self, project: Project, reads: Reads):
        self.project, self.reads = project, reads
        self.foreign = not dialect_of(project.dialect).BINDS_IN_DUCKDB
        if self.foreign:
            self.wording = replace(self.wording, exact=False)
        self.tables: dict[str, Signature] = {}
        """What a load would create for each relation: its columns, created in DuckDB on demand."""
        self.created: set[str] = set()
        self.output: Signature = []
        self._con: Any = None
        self._path: str | None = None

    @property
    def con(self) -> Any:
        if self._con is None:
            import duckdb

            config: dict[str, str | bool | int | float | list[str]] = {
                "threads": 1,
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "python_enable_replacements": False,  # a missing table is never a Python variable of this module
            }
            self._con = duckdb.connect(":memory:", config=config)
            for catalog in sorted(self.project.catalogs)[:1]:
                # names qualified with the warehouse's own database ("db"."schema"."t") bind here too
                self._con.execute(f"ATTACH ':memory:' AS {quote(catalog)}; USE {quote(catalog)}")
            schemas = {r.schema for r in self.project.relations.values()}
            schemas |= set(self.project.settings.defaults.search_path)
            self._con.execute(";\n".join(f"CREATE SCHEMA IF NOT EXISTS {quote(s)}" for s in sorted(schemas)))
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    # ------------------------------------------------------------------ what the compiler asks

    def source(self, relation: Relation) -> None:
        self.tables[relation.name] = _design_columns(relation)

    def describe(self, relation: Relation) -> list[tuple[str, str]]:
        import duckdb

        self._prepare(relation)
        sql = self._text(relation)
        try:
            bound = self.con.sql(sql)
            self.output = list(zip(bound.columns, [str(t) for t in bound.types], strict=True))
        except duckdb.Error as exc:
            raise self._refusal(relation, sql, str(exc)) from None
        return self.output

    def create(self, relation: Relation) -> None:
        if relation.kind == "ctas" and typed(relation):
            self.tables[relation.name] = _design_columns(relation)  # a load inserts into the design's types
        else:
            self.tables[relation.name] = _unique(self.output)

    def stand_in(self, relation: Relation) -> bool:
        self.tables[relation.name] = _design_columns(relation)
        return True

    def rejected(self, relation: Relation, text: str) -> tuple[str, str]:
        return (
            f'the SQL of "{relation.name}" does not bind: {text}',
            "Fix the query (or the design of the relation it reads); a load would fail on it.",
        )

    # ------------------------------------------------------------------ binding

    def _prepare(self, relation: Relation) -> None:
        """Create the tables the query reads, and look unqualified names up where a load does."""
        import duckdb

        todo = [name for name in self.reads(relation) if name not in self.created]
        if todo:
            statements = [_create_table(name, self.tables[name]) for name in todo]
            try:
                self.con.execute(";\n".join(statements))
            except duckdb.Error as exc:
                raise Rejected(f"a table it reads cannot be made in DuckDB ({exc})", certain=False) from None
            self.created.update(todo)
        refs = relation.references
        if (
            relation.unparsed is not None
            or refs is None
            or any(ref.schema is None and ref.catalog is None for ref in refs)
        ):
            path = ",".join(quote(s) for s in (relation.schema, *self.project.settings.defaults.search_path))
            if path != self._path:
                self.con.execute(f"SET search_path = '{path.replace(chr(39), chr(39) * 2)}'")
                self._path = path

    def _text(self, relation: Relation) -> str:
        """The query as DuckDB binds it: as written, or transpiled from PostgreSQL/Redshift."""
        assert relation.sql is not None
        if not self.foreign:
            return relation.sql
        import sqlglot
        from sqlglot.errors import ErrorLevel

        try:
            return sqlglot.transpile(
                relation.sql, read=self.project.dialect, write="duckdb", unsupported_level=ErrorLevel.IGNORE
            )[0]
        except sqlglot.errors.SqlglotError as exc:
            raise Rejected(f"sqlglot cannot translate it to DuckDB ({exc})", certain=False) from None

    def _refusal(self, relation: Relation, sql: str, text: str) -> Rejected:
        """The problem of a query DuckDB refused: an error, or a note when DuckDB is not the judge."""
        kind = text.partition(":")[0]
        if kind in _NOT_HERE or any(part in text for part in _EXTENSION):
            why = "it reads files or needs an extension, which validate does not load"
            return Rejected(f"{why} ({brief(text)})", certain=False)
        if self.foreign:
            certain = any(part in text for part in _UNKNOWN_NAME)
            place = locate_error(self.project, relation, text)
            if not certain:
                text = f"DuckDB cannot check this {self.project.dialect} query ({brief(text)})"
            return Rejected(brief(text), place, certain=certain)
        context = self._context(sql) or text
        return Rejected(brief(text), locate_error(self.project, relation, context, sql, len(_EXPLAIN)))

    def _context(self, sql: str) -> str | None:
        """DuckDB's message with ``LINE n:`` and a caret (the relation API's messages have none)."""
        import duckdb

        try:
            self.con.execute(_EXPLAIN + sql)
        except duckdb.Error as exc:
            return str(exc)
        return None


def _design_columns(relation: Relation) -> Signature:
    return [(c.name, _duckdb_type(c.type or "")) for c in relation.design.loaded_columns]


@lru_cache(maxsize=4096)
def _duckdb_type(text: str) -> str:
    return parse_type(text).render("duckdb")


def _unique(columns: Signature) -> Signature:
    """Output names made unique the way DuckDB's CREATE TABLE AS does (``a``, ``a_1``, ``a_2``)."""
    used: set[str] = set()
    result: Signature = []
    for name, kind in columns:
        candidate, n = name, 0
        while candidate.lower() in used:
            n += 1
            candidate = f"{name}_{n}"
        used.add(candidate.lower())
        result.append((candidate, kind))
    return result


def _create_table(name: str, columns: Signature) -> str:
    body = ", ".join(f"{quote(column)} {kind}" for column, kind in columns)
    return f"CREATE TABLE {qualified(name)} ({body})"
