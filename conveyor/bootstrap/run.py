"""Bootstrap: write table designs from what the upstream sources reflect.

For every selected source, :func:`bootstrap` lists the upstream tables its ``include`` and
``exclude`` globs let through, reflects each one (:meth:`Source.describe`) and writes
``schemas/<target_schema>/<table>.yaml``: columns with their design types, keys, and a
suggested ``extract.split_by``. With ``update=True`` it merges upstream changes into the
existing designs and keeps every hand edit (see docs/bootstrap.md for the rules).

Everything is planned before anything is written: a selection term that matches nothing
is a :class:`~conveyor.errors.SelectionError` and no file changes. One table's failure
(e.g. a column type the source cannot map) is reported and the others go on. Files are
written atomically (temp file + ``os.replace``) and the output is stable: the same upstream
gives byte-identical files, and an ``update`` that changes nothing does not touch a file.

The generated YAML is produced with ruamel.yaml (round-trip mode) so merges keep the
user's comments and key order; the project itself is still read with PyYAML, whose YAML
1.1 rules decide which strings must be quoted (``no``, ``on``, ``1e3`` ...).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.bootstrap.design import decimal_limit, plan_create
from conveyor.bootstrap.merge import plan_update
from conveyor.bootstrap.plan import DecimalLimit, SourcePlan, Upstream
from conveyor.bootstrap.report import BootstrapReport, TableReport
from conveyor.bootstrap.yamlfile import UNSAFE_NAME, atomic_write
from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError, SelectionError, did_you_mean
from conveyor.project import Project, Relation
from conveyor.sources import open_source
from conveyor.sources.base import Source


@dataclass
class _Term:
    """One selection term: a source (or target schema) name, or a glob over warehouse names."""

    text: str
    sources: list[str]
    whole: bool
    matched: bool = False


def _parse_terms(project: Project, selection: Sequence[str]) -> list[_Term]:
    sources = project.settings.sources
    schemas = {name: (cfg.target_schema or name) for name, cfg in sources.items()}
    terms = []
    for raw in selection:
        text = raw.strip()
        if not text:
            continue
        if text in sources:
            terms.append(_Term(text, [text], whole=True, matched=True))
            continue
        if "." not in text:
            hits = [n for n in sources if fnmatch.fnmatchcase(n, text) or fnmatch.fnmatchcase(schemas[n], text)]
            if not hits:
                raise _no_match(text, [*sources, *schemas.values()], "no source or target schema has that name")
            terms.append(_Term(text, hits, whole=True, matched=True))
            continue
        schema_glob = text.split(".", 1)[0]
        hits = [n for n in sources if fnmatch.fnmatchcase(schemas[n], schema_glob)]
        if not hits:
            candidates = [f"{s}.*" for s in schemas.values()]
            raise _no_match(text, candidates, f'no source loads into a schema matching "{schema_glob}"')
        terms.append(_Term(text, hits, whole=False))
    return terms


def _no_match(term: str, candidates: Iterable[str], why: str) -> SelectionError:
    return SelectionError(
        f'the selection "{term}" matches nothing: {why}.' + did_you_mean(term, sorted(set(candidates))),
        hint='Terms are source names or globs over "<target_schema>.<table>", e.g. shop or shop.order*.',
        code="no-match",
    )


def bootstrap(
    project: Project, selection: Sequence[str] = (), *, update: bool = False, dry_run: bool = False
) -> BootstrapReport:
    """Write (or, with ``update``, merge) table designs for the upstream tables of the selection.

    Args:
        project: a loaded project; it may have sources and no ``schemas/`` folder yet.
        selection: source names, or globs over ``<target_schema>.<table>`` (the names the
            designs get); empty means every source.
        update: merge upstream changes into existing designs, keeping hand edits. Without
            it an existing design is left untouched (action ``exists``).
        dry_run: plan and report, write nothing.

    Returns:
        The report; its ``ok`` is false when a table (or a whole source) failed.

    Raises:
        SelectionError: a term matches nothing (nothing is written).
        SecretError: a source's DSN names an unset variable (nothing is written).
    """
    terms = _parse_terms(project, selection)
    chosen = [n for n in project.settings.sources if not terms or any(n in t.sources for t in terms)]
    dsns = {name: project.source_dsn(name) for name in chosen}  # bad input fails before any connection
    limit = decimal_limit(project)
    plans = [_plan_source(project, name, dsns[name], terms, update=update, limit=limit) for name in chosen]

    for term in terms:
        if term.matched:
            continue
        plans_of_term = [p for p in plans if p.name in term.sources]
        if plans_of_term and not any(p.opened for p in plans_of_term):
            continue  # its sources failed (reported); we cannot say it matches nothing
        if not any(fnmatch.fnmatchcase(n, term.text) for p in plans_of_term for n in p.names):
            names = [n for p in plans_of_term for n in p.names]
            raise _no_match(term.text, names, "no upstream table or design has that warehouse name")

    report = BootstrapReport(dry_run=dry_run, update=update, root=project.root)
    for plan in plans:
        report.tables.extend(plan.reports)
        report.warnings.extend(plan.warnings)
        if dry_run:
            for write in plan.writes:  # what an update would change, as a diff of the file
                if write.path.is_file() and write.report.action == "updated":
                    write.report.diff = file_diff(write.path, write.text, project.root)
        else:
            for write in plan.writes:
                try:
                    atomic_write(write.path, write.text, write.mode)
                except OSError as exc:
                    write.report.action = "failed"
                    write.report.error = f"cannot write {write.path}: {exc.strerror or exc}."
    missing = [t.table for t in report.tables if t.action == "failed" and t.upstream is not None and t.path is None]
    if dry_run:
        missing = [t.table for t in report.tables if t.action == "created"] + missing
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        if dry_run:  # "would create" above; say why the warning still holds, not that it would
            report.warnings.append(
                f"{len(missing)} upstream table(s) have no design yet: {shown}. "
                "Run the command again without --dry-run to write them."
            )
        else:
            report.warnings.append(f"{len(missing)} upstream table(s) have no design: {shown}.")
    odd = [column for plan in plans for column in plan.odd]
    if odd:
        report.warnings.append(
            f"{len(odd)} column(s) have no exact design type a warehouse here holds, written visibly (a comment "
            f"on each says why; docs/types.md): {', '.join(odd)}."
        )
    return report


def file_diff(path: Path, new: str, root: Path) -> str:
    """A unified diff from the file at ``path`` to ``new``, with paths relative to ``root``."""
    import difflib

    shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    old = path.read_text(encoding="utf-8")
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{shown}", f"b/{shown}"))


def _plan_source(
    project: Project, name: str, dsn: str, terms: list[_Term], *, update: bool, limit: DecimalLimit
) -> SourcePlan:
    config = project.source_config(name)
    target = config.target_schema or name
    plan = SourcePlan(name, target, limit=limit)
    whole = not terms or any(t.whole and name in t.sources for t in terms)
    globs = [t for t in terms if not t.whole and name in t.sources]

    def selected(warehouse_name: str) -> bool:
        hit = False
        for term in globs:
            if fnmatch.fnmatchcase(warehouse_name, term.text):
                term.matched = hit = True
        return whole or hit

    try:
        source = open_source(config.type, name, dsn, root=project.root, zero_dates=config.zero_dates)
    except ImportError as exc:
        plan.reports.append(
            TableReport(f"{target}.*", name, None, "failed", error=f"the {config.type} engine is not available: {exc}.")
        )
        return plan
    with source:
        try:
            everything = sorted(source.list_tables())
            matched = set(source.matching_tables(config.include, config.exclude))
        except ConveyorError as exc:
            plan.reports.append(TableReport(f"{target}.*", name, None, "failed", error=scrub(exc.render())))
            return plan
        plan.opened = True
        known = [f"{s}.{t}" for s, t in everything]
        for pattern in config.include:
            if not any(fnmatch.fnmatchcase(q, pattern) for q in known):
                plan.warnings.append(
                    f'source "{name}": include pattern "{pattern}" matches no upstream table.'
                    + did_you_mean(pattern, known)
                )
        if everything and not matched:
            plan.warnings.append(f'source "{name}": include and exclude leave no upstream table.')
        designs = [r for r in project.relations.values() if r.source == name and r.kind == "source"]
        upstreams, orphans = _assign_names(project, source, everything, matched, designs)
        plan.names = {f"{target}.{u.name}" for u in upstreams if u.matched} | {r.name for r in designs}

        for upstream in upstreams:
            if not upstream.matched:
                for relation in upstream.designs:
                    if selected(relation.name):
                        plan.warnings.append(
                            f'"{relation.name}": its upstream table {upstream.qualified} is left out by the include/'
                            f'exclude globs of source "{name}"; bootstrap did not touch it.'
                        )
                continue
            warehouse_name = f"{target}.{upstream.name}"
            chosen = [r for r in upstream.designs if selected(r.name)]
            if (upstream.designs and not chosen) or (not upstream.designs and not selected(warehouse_name)):
                continue
            if chosen and not update:
                for relation in chosen:
                    plan.reports.append(
                        TableReport(
                            relation.name,
                            name,
                            upstream.qualified,
                            "exists",
                            relation.doc.path,
                            len(relation.design.columns),
                            notes=["exists (use --update)"],
                        )
                    )
                continue
            try:
                info = source.describe(upstream.schema, upstream.table)
            except ConveyorError as exc:
                plan.reports.append(_failure(warehouse_name, name, upstream, exc, chosen))
                continue
            if chosen:
                for relation in chosen:
                    plan_update(plan, relation, info)
            else:
                plan_create(project, plan, upstream, info)

        for relation in orphans:
            if not selected(relation.name):
                continue
            schema, table = project.upstream_table(relation)
            shown = f"{schema}.{table}" if schema else table
            plan.reports.append(
                TableReport(
                    relation.name,
                    name,
                    shown,
                    "orphaned",
                    relation.doc.path,
                    len(relation.design.columns),
                    notes=[f"upstream table {shown} does not exist"],
                )
            )
            plan.warnings.append(
                f'"{relation.name}" ({relation.doc.display}) extracts {shown}, which does not exist in source "{name}".'
            )
    return plan


def _failure(
    warehouse_name: str, source: str, upstream: Upstream, exc: ConveyorError, designs: list[Relation]
) -> TableReport:
    report = TableReport(warehouse_name, source, upstream.qualified, "failed", error=scrub(exc.render()))
    if designs:
        report.table = designs[0].name
        report.path = designs[0].doc.path
        report.notes.append("design left unchanged")
    else:
        report.notes.append("no design written")
    return report


def _assign_names(
    project: Project,
    source: Source,
    everything: list[tuple[str, str]],
    matched: set[tuple[str, str]],
    designs: list[Relation],
) -> tuple[list[Upstream], list[Relation]]:
    """Give every upstream table its warehouse name; existing designs keep theirs.

    An upstream table with a design keeps the design's name. A new table gets its own
    name unless a design or another table has it already (compared case-insensitively, for
    case-insensitive warehouses and file systems): then it becomes ``<schema>_<table>``.
    Tables in the source's default schema are named first, so they get the plain names.
    """
    upstreams = {(s, t): Upstream(s, t, "", (s, t) in matched) for s, t in everything}
    by_table: dict[str, list[tuple[str, str]]] = {}
    for s, t in everything:
        by_table.setdefault(t, []).append((s, t))
    orphans: list[Relation] = []
    for relation in sorted(designs, key=lambda r: r.name):
        schema, table = project.upstream_table(relation)
        if schema is not None:
            found = upstreams.get((schema, table))
        else:
            candidates = by_table.get(table, [])
            found = upstreams[candidates[0]] if len(candidates) == 1 else None
        if found is None:
            orphans.append(relation)
        else:
            found.designs.append(relation)
            found.name = found.name or relation.table
    taken = {r.table.casefold(): r.table for r in designs}
    owner = {r.table.casefold(): f"design {r.name}" for r in designs}
    default = source.DEFAULT_SCHEMA
    fresh = sorted(
        (u for u in upstreams.values() if u.matched and not u.designs),
        key=lambda u: (u.schema != default, u.schema, u.table),
    )
    for upstream in fresh:
        base = UNSAFE_NAME.sub("_", upstream.table)
        name = base
        if name.casefold() in taken:
            upstream.renamed_because = owner[name.casefold()]
            name = f"{UNSAFE_NAME.sub('_', upstream.schema)}_{base}"
            suffix = 2
            while name.casefold() in taken:
                name = f"{UNSAFE_NAME.sub('_', upstream.schema)}_{base}_{suffix}"
                suffix += 1
        elif base != upstream.table:
            upstream.renamed_because = "the upstream name has characters a design name cannot hold"
        upstream.name = name
        taken[name.casefold()] = name
        owner[name.casefold()] = f"upstream {upstream.qualified}"
    return sorted(upstreams.values(), key=lambda u: (u.schema, u.table)), orphans
