"""Create relations empty, in execution order, so an engine compiles every query: one compiler, two targets.

The compiler walks the selection and everything upstream of it in execution order and asks
its :class:`Target` to create each relation: source tables from their designs' columns, CTAS
and views from their queries. Before a CTAS or view is created, the target describes its
query's output, which is compared with the design's columns (names, order, types:
:mod:`conveyor.validate.columns`).

Two targets exist:

* ``--with-warehouse ENV`` (:mod:`conveyor.validate.compile`): a throwaway warehouse of the
  environment's engine, built exactly as a load with ``--skip-copy`` builds it (the same
  DDL, the same SQL rewriting, ``LIMIT 0`` for CTAS), then abandoned and removed.
* plain ``validate`` (:mod:`conveyor.validate.bind`): an in-memory DuckDB that binds each
  query against empty tables typed as the designs say.

A relation that does not compile, or whose output does not match its design, is replaced
by a stand-in built from its design (when the design has typed columns), so the relations
downstream of it are still compiled against what the design promises. Without a stand-in
they are not compiled (an ``info`` note says why); neither is a relation that reads a
table outside the project or one that does not exist in the target. Only problems of
selected relations are reported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError, Location
from conveyor.graph.refs import resolve
from conveyor.project import Project, Relation
from conveyor.validate.columns import Produced, compare_columns
from conveyor.validate.problems import Problem, problem
from conveyor.validate.typecompat import native_type


class Rejected(Exception):
    """The target refused a relation's statement.

    Attributes:
        message: what the engine said (short, no statement echo).
        where: the place in the project the message points at, when known.
        certain: False when the refusal may be the target's limit rather than the query's
            fault (a PostgreSQL function the in-memory DuckDB lacks): a note, not an error.
    """

    def __init__(self, message: str, where: Location | None = None, *, certain: bool = True):
        super().__init__(message)
        self.message, self.where, self.certain = message, where, certain


@dataclass(frozen=True)
class Wording:
    """How a target's problems are named and phrased."""

    check: str
    """The check its problems are reported under."""
    failed: str
    """The code of a rejected statement."""
    skipped: str
    """The code of a relation that was not compiled."""
    verb: str
    """Past participle for a skipped relation: "compiled", "bound"."""
    place: str
    """Where relations are created: "the scratch warehouse"."""
    exact: bool
    """Output names compare exactly and types are known (the target is the warehouse's own engine)."""


class Target(ABC):
    """Where the compiler creates relations. Methods raise :class:`Rejected` when the engine refuses."""

    wording: Wording
    dialect: str
    """The dialect type names of :meth:`describe` are read in."""

    @abstractmethod
    def source(self, relation: Relation) -> None:
        """Create a source table, empty, with its design's (typed) columns."""

    @abstractmethod
    def describe(self, relation: Relation) -> list[tuple[str, str]]:
        """(name, native type) of every column the relation's query produces, reading no row."""

    @abstractmethod
    def create(self, relation: Relation) -> None:
        """Create a CTAS or view whose query was described, as a load would."""

    @abstractmethod
    def stand_in(self, relation: Relation) -> bool:
        """Create an empty table with the design's typed columns in the relation's place; False if impossible."""

    def rejected(self, relation: Relation, text: str) -> tuple[str, str]:
        """Message and hint of a refused statement."""
        return (
            f'the warehouse rejects "{relation.name}": {text}',
            "Fix the query (or the design) so that a load can build it.",
        )


def typed(relation: Relation) -> bool:
    """Whether every loaded column of the design has a type (so a table can be made from the design)."""
    return relation.design.typed


class Reads:
    """Every relation a query names, resolved as a load resolves them (catalog-qualified names left out)."""

    def __init__(self, project: Project):
        self.project = project
        self.known = project.relations.keys()
        self.search_path = project.settings.defaults.search_path
        self.memo: dict[str, list[str]] = {}

    def __call__(self, relation: Relation) -> list[str]:
        found = self.memo.get(relation.name)
        if found is None:
            if relation.unparsed is not None or relation.references is None:
                # sqlglot could not parse it (or there is no SQL): what it reads is its depends_on
                found = self.memo[relation.name] = list(relation.dependencies)
                return found
            catalogs = self.project.catalogs
            names = (resolve(r, relation.schema, self.search_path, self.known, catalogs) for r in relation.references)
            found = self.memo[relation.name] = [name for name in names if name is not None]
        return found


class Compiler:
    """Creates relations one by one in a target, collecting the problems of selected relations."""

    def __init__(self, project: Project, target: Target, selected: set[str], reads: Reads | None = None):
        self.project, self.target, self.selected = project, target, selected
        self.reads = reads or Reads(project)
        self.wording = target.wording
        self.missing: dict[str, str] = {}
        """Relations that exist in no form in the target, with the reason."""
        self.made: set[str] = set()
        """Relations that exist in the target (as built, or as a stand-in)."""
        self.described: set[str] = set()
        """Relations whose query output the target described (compared with the design)."""
        self.quiet: set[str] = set()
        """Missing relations whose cause the project check reports (nothing downstream is noted)."""
        self.refused: set[str] = set()
        """Relations whose statement the target refused (an error was reported)."""
        self.problems: list[Problem] = []

    def run(self, order: Sequence[Relation]) -> list[Problem]:
        for relation in order:
            self.compile(relation)
        return self.problems

    def compile(self, relation: Relation) -> None:
        """Create one relation; an engine's surprise is this relation's problem, not the whole run's."""
        try:
            self._one(relation)
        except Exception as exc:
            self.missing[relation.name] = "compiling it failed"
            self.refused.add(relation.name)
            text = scrub(exc.message if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}")
            self._report(relation, self._failed(relation, Rejected(brief(text), relation.location("name"))))

    def _report(self, relation: Relation, found: Problem) -> None:
        if relation.name in self.selected:
            self.problems.append(found)

    def _skip(self, relation: Relation, why: str) -> None:
        self.missing[relation.name] = why
        self._report(
            relation,
            problem(
                self.wording.skipped,
                f'"{relation.name}" was not {self.wording.verb}: {why}.',
                location=relation.location("name"),
                relation=relation.name,
                check=self.wording.check,
            ),
        )

    def _one(self, relation: Relation) -> None:
        why = self.blocker(relation)
        unbuilt = [name for name in self.reads(relation) if name not in self.made]
        if why:
            self._skip(relation, why)
        elif unbuilt:
            # a missing dependency, a broken design or a cycle: reported by the project check already
            self.missing[relation.name] = f"it reads {unbuilt[0]}, which is not built"
            self.quiet.add(relation.name)
        elif relation.kind == "source":
            self._source(relation)
        elif relation.references is None:
            self.missing[relation.name] = "its SQL does not parse"  # reported as sql-parse
        else:
            self._query(relation)

    def blocker(self, relation: Relation) -> str | None:
        """Why the relation cannot be compiled (something it reads failed, or is outside the project), or None."""
        blocked = [d for d in relation.sql_dependencies if d in self.missing and d not in self.quiet]
        if blocked:
            return f"it reads {blocked[0]}, which is not in {self.wording.place}"
        if relation.external:
            return f"it reads {relation.external[0]}, which is outside the project"
        return None

    def _source(self, relation: Relation) -> None:
        if not typed(relation):
            self.missing[relation.name] = "a column has no type"  # reported by the design checks
            return
        try:
            self.target.source(relation)
            self.made.add(relation.name)
        except Rejected as exc:
            self.missing[relation.name] = "its table cannot be created"
            self._report(relation, self._failed(relation, Rejected(exc.message, relation.location("columns"))))

    def _query(self, relation: Relation) -> None:
        try:
            described = self.target.describe(relation)
        except Rejected as exc:
            self._refused(relation, exc)
            return
        self.described.add(relation.name)
        found = self._compare(relation, described)
        for item in found:
            self._report(relation, item)
        if any(item.severity == "error" for item in found):
            self._stand_in(relation, "its columns do not match its design")
            return
        try:
            self.target.create(relation)
            self.made.add(relation.name)
        except Rejected as exc:
            self._refused(relation, exc)

    def _refused(self, relation: Relation, exc: Rejected) -> None:
        if exc.certain:
            self.refused.add(relation.name)
            self._report(relation, self._failed(relation, exc))
            self._stand_in(relation, "it does not compile")
        else:
            self._stand_in(relation, "")
            self._report(relation, self._unsure(relation, exc))

    def _compare(self, relation: Relation, described: list[tuple[str, str]]) -> list[Problem]:
        exact, dialect = self.wording.exact, self.target.dialect
        produced = [Produced(n, t, native_type(t, dialect)) if exact else Produced(n) for n, t in described]
        found = list(compare_columns(self.project, relation, produced, exact=exact, check=self.wording.check))
        return found + self._key_columns(relation, [p.name for p in produced])

    def _key_columns(self, relation: Relation, names: list[str]) -> list[Problem]:
        """Constraints of a relation without design columns name columns its query produces."""
        if (relation.design.columns and not relation.design.partial_columns) or relation.select_names is not None:
            return []  # checked against the design or the select list already
        from conveyor.validate.designs import column_uses

        return [
            problem(
                "unknown-column",
                f'the {use.what} of "{relation.name}" names column "{use.column}", which the query does not produce.',
                location=relation.location(*use.loc),
                hint=f"It produces: {', '.join(names)}.",
                relation=relation.name,
                check=self.wording.check,
            )
            for use in column_uses(relation)
            if use.column not in names
        ]

    def _stand_in(self, relation: Relation, why: str) -> None:
        """An empty table with the design's columns, for the relations downstream; else they are skipped."""
        if relation.kind != "view" and typed(relation):
            try:
                if self.target.stand_in(relation):
                    self.made.add(relation.name)
                    return
            except Rejected:
                pass
        self.missing[relation.name] = why or "it was not checked"

    def _failed(self, relation: Relation, exc: Rejected) -> Problem:
        message, hint = self.target.rejected(relation, exc.message)
        return problem(
            self.wording.failed,
            message,
            location=exc.where,
            hint=hint,
            relation=relation.name,
            check=self.wording.check,
        )

    def _unsure(self, relation: Relation, exc: Rejected) -> Problem:
        return problem(
            self.wording.skipped,
            f'"{relation.name}" was not {self.wording.verb}: {exc.message}',
            location=exc.where or relation.location("name"),
            hint="validate --with-warehouse ENV compiles it in the warehouse itself.",
            relation=relation.name,
            check=self.wording.check,
        )


def needed(project: Project, relations: Sequence[Relation]) -> set[str]:
    """The relations and everything upstream of them (one walk over the graph, however many are selected)."""
    names = {r.name for r in relations}
    todo = list(names)
    while todo:
        for parent in project.dag.parents(todo.pop()):
            if parent not in names:
                names.add(parent)
                todo.append(parent)
    return names


def brief(text: str) -> str:
    """An engine's message on one line, without the echo of the statement or lists of candidate functions."""
    kept: list[str] = []
    for line in text.strip().splitlines():
        if not line.strip() or line.startswith("LINE ") or line.strip().startswith("Candidate functions"):
            break
        kept.append(line.strip())
    joined = " ".join(kept) or text.strip()
    return joined if len(joined) <= 300 else joined[:297] + "..."
