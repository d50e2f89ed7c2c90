"""Which data tests exist: generic tests in designs, and custom assertions in ``tests/*.sql``.

Every test *covers* one relation: the relation whose design declares it, or, for a custom
assertion, each relation it reads that no other relation it reads depends on (its
"downstream ends"). A failed ``error`` test fails the relation it covers, so what depends on
that relation waits for the test and is skipped when it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import yaml
from pydantic import ValidationError

from conveyor.config.base import StrictModel
from conveyor.design.tests import Severity, TestEntry
from conveyor.errors import ConfigError, Location
from conveyor.project import Project, Relation

ASSERTIONS_FOLDER = "tests"
"""Custom assertions live in ``<project>/tests/<name>.sql`` (with an optional ``<name>.yaml``)."""


class AssertionSettings(StrictModel):
    """``tests/<name>.yaml``: how a custom assertion is reported."""

    severity: Severity = "error"
    description: str | None = None


@dataclass(frozen=True)
class DataTest:
    """One test of one relation."""

    name: str
    """Unique within its relation, e.g. ``not_null(status)``; a custom assertion's file stem."""
    relation: str
    """The relation it covers (whose failure it is)."""
    kind: str
    """A generic kind (``not_null`` ...) or ``assertion``."""
    severity: str
    where: Location | Callable[[], Location] = field(compare=False)
    """Its file:line, or how to find it: a design's line numbers are looked up only when asked
    (a design from the parse cache re-reads its YAML for them), e.g. for a failure."""
    reads: tuple[str, ...] = ()
    """Every relation the test reads, the covered one first."""
    entry: TestEntry | None = None
    column: str | None = None
    """The column a column test is declared on."""
    sql: str | None = None
    """A custom assertion's query (selects failing rows)."""
    path: Path | None = None

    @cached_property
    def location(self) -> Location:
        """file:line of the test (in its design, or the custom assertion's file)."""
        return self.where() if callable(self.where) else self.where

    @property
    def id(self) -> str:
        """``relation:name``: how the results and ``conveyor test`` name the test."""
        return f"{self.relation}:{self.name}"


@dataclass
class Assertion:
    """A custom assertion file: a query whose rows are failures."""

    name: str
    path: Path
    sql: str
    settings: AssertionSettings
    reads: list[str] = field(default_factory=list)
    problem: ConfigError | None = None


def default_name(entry: TestEntry, column: str | None) -> str:
    """A readable name: ``not_null(status)``, ``unique(a, b)``, ``expression(amount >= 0)`` ..."""
    args = entry.args
    if args.name:
        return args.name
    kind = entry.kind
    target = column or getattr(args, "column", None) or getattr(args, "expression", None)
    columns = getattr(args, "columns", None)
    if columns:
        target = ", ".join(columns)
    if kind == "expression":
        target = getattr(args, "sql", "")
    if kind == "relationships":
        target = f"{target} -> {getattr(args, 'to', '')}.{getattr(args, 'field', '')}"
    return f"{kind}({target})" if target else kind


def design_tests(relation: Relation) -> list[DataTest]:
    """The generic tests a relation's design declares, on its columns and on itself."""
    found: list[DataTest] = []
    for index, column in enumerate(relation.design.columns):
        for number, entry in enumerate(column.tests):
            found.append(_generic(relation, entry, column.name, ("columns", index, "tests", number)))
    for number, entry in enumerate(relation.design.tests):
        found.append(_generic(relation, entry, None, ("tests", number)))
    seen: dict[str, int] = {}
    unique: list[DataTest] = []
    for test in found:  # two identical tests keep apart: not_null(a), not_null(a) #2
        seen[test.name] = seen.get(test.name, 0) + 1
        if seen[test.name] > 1:
            test = _renamed(test, f"{test.name} #{seen[test.name]}")
        unique.append(test)
    return unique


def _renamed(test: DataTest, name: str) -> DataTest:
    from dataclasses import replace

    return replace(test, name=name)


def _generic(relation: Relation, entry: TestEntry, column: str | None, loc: tuple[str | int, ...]) -> DataTest:
    reads = [relation.name]
    if entry.relationships is not None:
        reads.append(entry.relationships.to)
    return DataTest(
        name=default_name(entry, column),
        relation=relation.name,
        kind=entry.kind,
        severity=entry.args.severity,
        where=partial(relation.location, *loc, entry.kind),
        reads=tuple(dict.fromkeys(reads)),
        entry=entry,
        column=column or getattr(entry.args, "column", None),
    )


def read_assertions(project: Project) -> list[Assertion]:
    """Every ``tests/*.sql`` of the project, with the relations each reads (problems kept, not raised)."""
    folder = project.root / ASSERTIONS_FOLDER
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.sql")):
        found.append(_assertion(project, path))
    return found


def _assertion(project: Project, path: Path) -> Assertion:
    from conveyor.graph.refs import SqlParseError, resolve
    from conveyor.graph.sqldeps import parse_sql, referenced_tables

    shown = str(path.relative_to(project.root))
    sql = path.read_text(encoding="utf-8")
    settings, problem = _assertion_settings(project, path.with_suffix(".yaml"))
    assertion = Assertion(path.stem, path, sql, settings, problem=problem)
    try:
        tree = parse_sql(sql, project.dialect)
    except SqlParseError as exc:
        assertion.problem = ConfigError(
            f'the custom assertion "{path.stem}" does not parse: {exc.detail}',
            location=Location(shown, exc.line, exc.column),
            hint="It must be one SELECT whose rows are the failures.",
            code="test-assertion-parse",
        )
        return assertion
    known = set(project.relations)
    search_path = project.settings.defaults.search_path
    for ref in referenced_tables(tree):
        name = resolve(ref, search_path[0] if search_path else "", search_path, known, project.catalogs)
        if name is not None and name in known:
            assertion.reads.append(name)
    assertion.reads = list(dict.fromkeys(assertion.reads))
    return assertion


def _assertion_settings(project: Project, path: Path) -> tuple[AssertionSettings, ConfigError | None]:
    if not path.exists():
        return AssertionSettings(), None
    shown = str(path.relative_to(project.root))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return AssertionSettings.model_validate(data), None
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).strip().splitlines()
        return AssertionSettings(), ConfigError(
            f"{shown} is not a valid custom assertion setting: {' '.join(first[:3])}",
            location=Location(shown),
            hint="It may hold severity (error or warn) and description.",
            code="test-assertion-settings",
        )


def assertion_tests(project: Project, assertions: Iterable[Assertion]) -> list[DataTest]:
    """A custom assertion covers the relations it reads that nothing else it reads depends on."""
    found = []
    for assertion in assertions:
        if assertion.problem is not None or not assertion.reads:
            continue
        reads = set(assertion.reads)
        ancestors: set[str] = set().union(*(project.dag.upstream(name) for name in reads))
        for covered in [name for name in assertion.reads if name not in ancestors]:
            found.append(
                DataTest(
                    name=assertion.name,
                    relation=covered,
                    kind="assertion",
                    severity=assertion.settings.severity,
                    where=Location(str(assertion.path.relative_to(project.root))),
                    reads=tuple(dict.fromkeys([covered, *assertion.reads])),
                    sql=assertion.sql,
                    path=assertion.path,
                )
            )
    return found


def tests_for(project: Project, relations: Sequence[Relation]) -> list[DataTest]:
    """The tests of a selection: every test covering one of ``relations`` (views included)."""
    names = {r.name for r in relations}
    found = [test for relation in relations for test in design_tests(relation)]
    found += [test for test in assertion_tests(project, read_assertions(project)) if test.relation in names]
    return found
