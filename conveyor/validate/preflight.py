"""The preflight: what ``conveyor validate`` can tell without a database, checked before a command writes.

``run``, ``extract``, ``load``, ``update``, ``upgrade`` and ``pipeline run`` call
:func:`preflight` after the project loaded and before they open a run, so bad input fails
with exit code 2 and one paragraph, and leaves the lake, the warehouse and the tracking store
as they were (no extract folder, no build, no failed run row). It checks the relations the
command works on:

- their designs (:data:`~conveyor.validate.designs.DESIGN_CHECKS`: keys, cursors and split
  keys naming real columns, types the warehouse holds ...) and job types;
- for commands that build, their queries bound in an in-memory DuckDB (as validate does);
- names the environment's warehouse would change (:mod:`~conveyor.validate.names`);
- the places it will read and write (:mod:`~conveyor.validate.paths`): the lake, the
  DuckDB file, SQLite sources, the tracking store and the credentials file.

Upstream drift and the warehouse's own compiler need a database; a run finds those itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.errors import UserError
from conveyor.project import Project, Relation
from conveyor.validate.datatests import assertions
from conveyor.validate.designs import DESIGN_CHECKS, warehouse_types
from conveyor.validate.jobs import job_types
from conveyor.validate.names import check_names
from conveyor.validate.paths import check_places
from conveyor.validate.problems import Problem


class PreflightError(UserError):
    """Bad input found before anything was written: every error, one per line, as validate words them."""

    code = "preflight"

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        first = self.problems[0]
        self.code = first.code
        super().__init__(first.message, location=first.location, hint=first.hint)

    def render(self) -> str:
        shown = [p.render() for p in getattr(self, "problems", [])]
        more = '\nRun "conveyor validate" to see every problem with its place.' if len(shown) > 1 else ""
        return "\n".join(shown) + more if shown else super().render()


def preflight(
    project: Project,
    relations: Sequence[Relation],
    *,
    extract: bool = False,
    environment: str | None = None,
    build: bool = False,
    lake: bool = True,
) -> None:
    """Raise :class:`PreflightError` if validate would report an error that needs no database.

    Args:
        relations: what the command works on.
        extract: it extracts the source tables among ``relations`` (their sources are checked,
            and the lake must be writable).
        environment: the environment it loads or updates (its file, its names).
        build: it builds ``relations`` (their queries are bound).
        lake: it reads or writes the lake.
    """
    found: list[Problem] = []
    for relation in relations:
        for check in DESIGN_CHECKS:
            if check is not warehouse_types:  # only the warehouse this command loads matters here
                found.extend(check(project, relation))
        if environment:
            found.extend(warehouse_types(project, relation, environment))
    found.extend(job_types(project, relations))
    found.extend(assertions(project, relations))
    sources = sorted({r.source for r in relations if extract and r.kind == "source" and r.source})
    found.extend(
        check_places(
            project,
            lake=lake,
            lake_write=extract,
            environments=(environment,) if environment else (),
            sources=tuple(sources),
            probe=True,
        )
    )
    if environment:
        found.extend(check_names(project, relations, [environment]))
    errors = _errors(found)
    if not errors and build:
        errors = _errors(_bound(project, relations))
    if errors:
        raise PreflightError(errors)


def _errors(found: Sequence[Problem]) -> list[Problem]:
    unique: list[Problem] = []
    for item in found:
        if item.severity == "error" and item not in unique:
            unique.append(item)
    return unique


def _bound(project: Project, relations: Sequence[Relation]) -> list[Problem]:
    """The queries of ``relations`` bound (or their select lists compared, where binding cannot tell)."""
    from conveyor.validate.bind import check_sql
    from conveyor.validate.columns import static_columns

    derived = [r for r in relations if r.kind != "source"]
    if not derived:
        return []
    found = check_sql(project, derived)
    problems = list(found.problems)
    for relation in derived:
        if relation.name in found.unchecked:
            problems.extend(static_columns(project, relation))
    return problems
