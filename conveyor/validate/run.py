"""``validate()``: every check in order, every problem collected, nothing stopped at the first.

1. project: ``Project.collect`` reads conveyor.yaml, every design and every query (through
   the parse cache), with the checks loading always makes (schema, names, schema kinds, SQL
   syntax, missing and external dependencies, cycles, secrets written inline ...).
2. designs: semantic checks of each selected design (:data:`~conveyor.validate.designs.DESIGN_CHECKS`)
   and of how its source tables are extracted (:mod:`~conveyor.validate.jobs`).
3. dependencies: ``depends_on`` entries the SQL does not need.
4. sql: every selected query bound against the designs in an in-memory DuckDB
   (:mod:`~conveyor.validate.bind`); explicit select lists against the design's columns
   where binding cannot tell. With ``warehouse=ENV`` the warehouse compiles instead (6);
   ``sql=False`` compares select lists only.
5. sources: upstream drift (``sources=False`` skips it).
6. warehouse: the selection built empty in a throwaway warehouse (``warehouse=ENV``; ``sql=False`` skips it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from conveyor.errors import Location, SelectionError, did_you_mean
from conveyor.project import LoadResult, Project, Relation
from conveyor.project.loader import paused_gc
from conveyor.validate.bind import check_sql
from conveyor.validate.columns import static_columns
from conveyor.validate.datatests import assertions
from conveyor.validate.dependencies import depends_on
from conveyor.validate.designs import DESIGN_CHECKS, warehouse_types
from conveyor.validate.drift import check_sources
from conveyor.validate.jobs import job_types
from conveyor.validate.names import check_names
from conveyor.validate.paths import check_places
from conveyor.validate.problems import Problem, Report, from_error, problem


def validate(
    root: Path | str = ".",
    selection: Sequence[str] = (),
    *,
    sources: bool = True,
    sql: bool = True,
    warehouse: str | None = None,
    cache: bool = True,
    environment: str | None = None,
) -> Report:
    """Check a project (or the relations of a selection) and return every problem found.

    Args:
        root: the project folder.
        selection: selection terms, as for ``conveyor ls``; empty means every relation. Problems
            of the project's files are reported whatever the selection.
        sources: compare selected source tables with their live upstream tables.
        sql: bind every query in an in-memory DuckDB, or compile it with the warehouse when
            ``warehouse`` is given (False compares explicit select lists only).
        warehouse: an environment name: build the selection empty in a throwaway copy of it.
        cache: read and write the parse and bind caches in ``.conveyor/cache/``.
        environment: check what depends on the warehouse (column types it can hold, name
            lengths, file places) for this environment only; default: every environment.

    Returns:
        The report; ``report.exit_code`` is 2 when there is an error, else 0.
    """
    began = time.perf_counter()
    report = Report(checks=["project"])
    with paused_gc():  # the checks, like loading, keep what they allocate (see paused_gc)
        loaded = Project.collect(root, cache=bool(cache))
        report.extend(_load_problems(loaded))
        project = loaded.project
        if project is not None:
            _check(
                project, selection, report, sources=sources, sql=sql, warehouse=warehouse, cache=bool(cache),
                environment=environment,
            )  # fmt: skip
    report.seconds = time.perf_counter() - began
    return report


def _check(
    project: Project,
    selection: Sequence[str],
    report: Report,
    *,
    sources: bool,
    sql: bool,
    warehouse: str | None,
    cache: bool,
    environment: str | None = None,
) -> None:
    report.order = {name: index for index, name in enumerate(project.dag.order())}
    environments = list(project.settings.environments)
    if environment is not None:
        if environment not in environments:
            message = f'environment "{environment}" is not defined in conveyor.yaml.'
            hint = did_you_mean(environment, environments).strip() + f" Known: {', '.join(environments)}."
            report.extend([problem("unknown-environment", message, hint=hint.strip())])
            return
        environments = [environment]
    try:
        selected = project.select(selection)
    except SelectionError as exc:
        report.extend([problem("bad-selection", exc.message, hint=exc.hint)])
        return
    report.relations = len(selected)

    report.extend(check_places(project, environments=tuple(environments)))

    report.checks.append("designs")
    for relation in selected:
        for check in DESIGN_CHECKS:
            if check is warehouse_types and environment is not None:
                report.extend(warehouse_types(project, relation, environment))
            else:
                report.extend(check(project, relation))
    report.extend(job_types(project, selected))
    report.extend(assertions(project, selected))
    report.extend(check_names(project, selected, environments))

    report.checks.append("dependencies")
    for relation in selected:
        report.extend(depends_on(project, relation))

    compile_now = warehouse is not None and sql
    if not compile_now:
        report.checks.append("sql")
        _sql(project, selected, report, bind=sql, cache=cache)
    if not sql:
        report.notes.append("--skip-sql: no query was bound or compiled; select lists were compared by name.")

    if sources:
        report.checks.append("sources")
        jobs = project.settings.defaults.jobs
        report.extend(check_sources(project, selected, jobs=jobs, undesigned=not selection))
    else:
        report.notes.append("--skip-sources: upstream tables were not compared with their designs.")

    if compile_now:
        assert warehouse is not None
        from conveyor.validate.compile import check_warehouse  # the warehouse's modules, only when asked

        report.checks.append("warehouse")
        report.extend(check_warehouse(project, selected, warehouse))


def _sql(project: Project, selected: list[Relation], report: Report, *, bind: bool, cache: bool) -> None:
    """Bind the queries (unless ``bind`` is off); compare select lists by name where binding could not."""
    unchecked = {r.name for r in selected}
    if bind:
        found = check_sql(project, selected, cache=cache)
        report.extend(found.problems)
        unchecked = found.unchecked
    for relation in selected:
        if relation.name in unchecked:
            report.extend(static_columns(project, relation))


def _load_problems(loaded: LoadResult) -> list[Problem]:
    """Problems of loading, each given to the relation whose file it is in."""
    return [from_error(exc, relation=relation_of(exc.location)) for exc in loaded.problems]


def relation_of(location: Location | None) -> str | None:
    """The relation a file belongs to: ``schemas/<schema>/<table>.<ext>`` is ``<schema>.<table>``."""
    if location is None:
        return None
    parts = Path(str(location.path)).parts
    if len(parts) == 3 and parts[0] == "schemas":
        return f"{parts[1]}.{parts[2].rpartition('.')[0]}"
    return None
