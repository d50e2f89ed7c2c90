"""Project commands: run, extract, load, update, upgrade, unload, schema, show."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.markup import escape

from conveyor import api
from conveyor.cli.app import Options, pass_options, selection_argument
from conveyor.cli.output import RichReporter, first_line, print_json, print_table, stdout
from conveyor.errors import RunFailed, UserError
from conveyor.extract.jobs import ExtractEvent
from conveyor.project import Project

selection_arg = selection_argument
env_option = click.option("--env", "-e", help="The warehouse environment (default: default_environment).")
jobs_option = click.option("--jobs", "-j", type=click.IntRange(1, 256), help="Parallel workers.")
dry_run_option = click.option("--dry-run", is_flag=True, help="Show what would happen; change nothing.")
lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=api.LOCK_TIMEOUT_S,
    show_default=True,
    metavar="S",
    help="Seconds to wait for a load or update of the same warehouse that is running.",
)
fail_fast_option = click.option(
    "--fail-fast", is_flag=True, help="After the first failure, start nothing new (the rest is recorded as skipped)."
)
format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


def _project(options: Options) -> Project:
    return api.open_project(options.project_dir)


def _finish(outcome: api.Outcome, fmt: str, options: Options, *, results: bool = False) -> None:
    """Print a run's summary and exit 1 when it failed.

    With ``results``, ``--format json`` prints the run's results document (docs/results.md);
    otherwise the command's summary, with the path of that document.
    """
    data = {"run_id": outcome.run_id, "command": outcome.command, "ok": outcome.ok, **outcome.summary()}
    data.update({"warehouse": outcome.warehouse, "lake": outcome.lake, "notes": outcome.notes})
    data["results"] = outcome.results_path
    if fmt == "json" and results and outcome.results is not None:
        from conveyor.results import render

        sys.stdout.write(render(outcome.results))  # the results file's text, byte for byte
    elif fmt == "json":
        print_json(data)
    elif options.verbosity >= 0:
        _print_summary(outcome)
    elif options.verbosity == -1:  # -q: the one line a script or a person needs; -qq: nothing
        stdout.print(_last_line(outcome))
    if not outcome.ok:
        raise RunFailed(
            f"run {outcome.run_id} failed.", hint=f'See "conveyor runs show {outcome.run_id}" for every step.'
        )


def _print_summary(outcome: api.Outcome) -> None:
    if outcome.extract is not None and outcome.extract.results:  # a transform-only run extracts nothing
        ex = outcome.extract
        ok = sum(1 for r in ex.results if r.status == "succeeded")
        seconds = sum(r.seconds for r in ex.results)
        stdout.print(f"Extracted {ok}/{len(ex.results)} tables, {ex.rows:,} rows ({seconds:.1f} s of work)")
        for result in ex.results:
            if result.status == "failed":
                stdout.print(f"  [red]✗ {result.relation}[/]: {escape(result.error or '')}")
            elif result.status == "skipped":
                stdout.print(f"  [yellow]- {result.relation}[/] {escape(result.error or 'skipped')}")
    if outcome.build is not None:
        b = outcome.build
        kept = f"; {len(b.kept)} kept from the build it resumed" if b.kept else ""
        total = len(b.status) - len(b.kept)
        stdout.print(f"Built {len(b.built)}/{total} relations, {sum(b.rows.values()):,} rows{kept}")
        for name in b.with_status("failed"):
            stdout.print(f"  [red]✗ {name}[/]: {escape(b.errors.get(name, ''))}")
        for name in b.with_status("skipped"):
            stdout.print(f"  [yellow]- {name}[/] skipped (upstream failed)")
        if b.published:
            stdout.print(f"Published to {outcome.warehouse}")
        else:
            stdout.print(f"[red]Not published[/]: {escape(b.reason or '')}. The previous warehouse is unchanged.")
            if outcome.command in ("load", "run"):
                stdout.print('The build was kept: fix the problem, then "conveyor load --resume" rebuilds what failed.')
    _print_tests(outcome)
    for note in outcome.notes:
        stdout.print(f"[yellow]Note:[/] {escape(note)}")
    if outcome.lake and outcome.command != "test":
        stdout.print(f"Lake: {outcome.lake}")
    stdout.print(_last_line(outcome))


def _print_tests(outcome: api.Outcome) -> None:
    """One line of test counts, then each test that failed or warned, with what fails."""
    tests = outcome.test_outcomes
    if not tests:
        return
    order = ("succeeded", "warned", "failed", "skipped")
    words = {"succeeded": "passed", "warned": "warned", "failed": "failed", "skipped": "skipped"}
    counts = [f"{sum(t.status == s for t in tests)} {words[s]}" for s in order if any(t.status == s for t in tests)]
    stdout.print(f"Tests: {', '.join(counts)}")
    colours = {"failed": "red", "warned": "yellow"}
    for test in tests:
        if test.status in colours:
            mark = "✗" if test.status == "failed" else "!"
            stdout.print(f"  [{colours[test.status]}]{mark} {escape(test.describe())}[/]")


def _last_line(outcome: api.Outcome) -> str:
    state = "[green]succeeded[/]" if outcome.ok else "[red]failed[/]"
    return f"Run {outcome.run_id} {state} in {outcome.seconds:.1f} s"


def _show_plan(found: api.Plan) -> None:
    """Print what a command would do (``--dry-run``), in the words the command uses."""
    if found.command in ("run", "extract"):
        if found.extract:
            stdout.print(f"Would extract {len(found.extract)} table(s): " + ", ".join(found.extract))
        else:
            stdout.print("Would extract no table (the selection holds no source table).")
    count = f"{len(found.build)} relation(s)"
    lines = {
        "run": f"Would build {count} into {found.warehouse}:",
        "load": f"Would build {count} into {found.warehouse}:",
        "update": f"Would update {count} in {found.warehouse}, in one transaction:",
        "upgrade": f"Would drop and rebuild {count} in {f'schema {found.target}' if found.target else 'place'}:",
        "unload": f"Would unload {count} from {found.warehouse} to lake source {found.target}:",
    }
    if found.command in lines:
        stdout.print(lines[found.command])
        for kind, name in found.build:
            stdout.print(f"  {kind:<6} {name}")
    if found.command in ("run", "load"):
        stdout.print("Dry run: nothing was changed.")


@click.command()
@selection_arg
@env_option
@jobs_option
@fail_fast_option
@dry_run_option
@format_option
@pass_options
def run(
    options: Options,
    selection: tuple[str, ...],
    env: str | None,
    jobs: int | None,
    fail_fast: bool,
    dry_run: bool,
    fmt: str,
) -> None:
    """Extract, load, build and publish: the whole ETL for SELECTION (default: everything).

    Whole schemas are rebuilt: every relation in a schema that the selection touches. Every
    run writes its results to .conveyor/run_results.json (docs/results.md); --format json
    prints that document.
    """
    project = _project(options)
    if dry_run:
        _show_plan(api.plan(project, "run", selection, env=env))
        return
    with RichReporter(options.verbosity if fmt == "table" else -1) as reporter:
        outcome = api.run(project, selection, env=env, jobs=jobs, reporter=reporter, fail_fast=fail_fast)
    _finish(outcome, fmt, options, results=True)


class DefaultGroup(click.Group):
    """A group whose default command runs when the first word is not a subcommand.

    ``conveyor extract shop.*`` extracts; ``conveyor extract status`` shows the tracking table.
    """

    def __init__(self, *args: Any, default: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [self.default, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        default = self.commands[self.default]
        pieces = " ".join(default.collect_usage_pieces(ctx))
        formatter.write_usage(ctx.command_path, f"{pieces}  |  {ctx.command_path} COMMAND [ARGS]...")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The default command's options first (``extract --help`` shows --tables, --full ...), then
        the other commands."""
        default = self.commands[self.default]
        rows = [r for p in default.get_params(ctx) if isinstance(p, click.Option) and (r := p.get_help_record(ctx))]
        with formatter.section("Options"):
            formatter.write_dl(rows)
        self.format_commands(ctx, formatter)


@click.group(cls=DefaultGroup, default="tables")
def extract() -> None:
    """Extract the source tables of SELECTION (default: all) from upstream into the lake, or
    show the extract tracking table.

    \b
    conveyor extract [SELECTION] [OPTIONS]   extract (the options below)
    conveyor extract status                  per table: status, last success, rows, watermark

    One table's failure does not stop the others unless --fail-fast is given; the exit code
    is 1 if any table failed.
    """


@extract.command(name="tables")
@selection_arg
@click.option("--tables", help="Comma-separated table names to extract (narrows the selection).")
@click.option("--event", "event_path", help='An event file (or - for stdin): {"source": ..., "tables": [...] or "*"}.')
@click.option("--full", is_flag=True, help="Re-extract everything, ignoring incremental watermarks.")
@fail_fast_option
@jobs_option
@dry_run_option
@format_option
@pass_options
def extract_tables(
    options: Options,
    selection: tuple[str, ...],
    tables: str | None,
    event_path: str | None,
    full: bool,
    fail_fast: bool,
    jobs: int | None,
    dry_run: bool,
    fmt: str,
) -> None:
    """Extract the source tables of SELECTION (default: all) from upstream into the lake.

    One table's failure does not stop the others unless --fail-fast is given; the exit code
    is 1 if any table failed.
    """
    project = _project(options)
    if tables and event_path:
        raise UserError("give either --tables or --event, not both.")
    event = ExtractEvent.read(event_path) if event_path else None
    if tables:
        event = ExtractEvent(tables=tuple(t.strip() for t in tables.split(",") if t.strip()))
    if dry_run:
        _show_plan(api.plan(project, "extract", selection, event=event, full=full))
        return
    with RichReporter(options.verbosity if fmt == "table" else -1) as reporter:
        outcome = api.extract_tables(
            project, selection, event=event, full=full, fail_fast=fail_fast, jobs=jobs, reporter=reporter
        )
    _finish(outcome, fmt, options)


@extract.command()
@click.option("--source", help="Only tables of this source.")
@format_option
@pass_options
def status(options: Options, source: str | None, fmt: str) -> None:
    """Show the extract tracking table: per (source, relation) the upstream table, the latest
    status, last success, rows, bytes, watermark and error."""
    project = _project(options)
    rows = api.extract_status(project, source)
    if fmt == "json":
        print_json([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in vars(r).items()} for r in rows])
        return
    print_table(
        ["source", "relation", "upstream", "status", "last success", "rows", "bytes", "watermark", "error"],
        [
            (
                r.source,
                r.table_name,
                r.upstream_table or "(legacy)",
                r.status,
                r.last_success_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if r.last_success_at else "",
                "" if r.rows is None else f"{r.rows:,}",
                "" if r.bytes is None else f"{r.bytes:,}",
                _watermark_value(r.watermark),
                first_line(r.error),
            )
            for r in rows
        ],
    )


def _watermark_value(text: str | None) -> str:
    if not text:
        return ""
    data = json.loads(text)
    return f"{data.get('cursor')} = {data.get('value')}"


@click.command()
@selection_arg
@env_option
@jobs_option
@click.option(
    "--skip-copy", is_flag=True, help="Create every relation with no data (the warehouse still compiles all SQL)."
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the last failed (or abandoned) load: rebuild only what failed, was skipped or never finished.",
)
@click.option("--continue-from", metavar="RELATION", help="Continue the last failed load from RELATION on.")
@fail_fast_option
@dry_run_option
@format_option
@pass_options
def load(
    options: Options,
    selection: tuple[str, ...],
    env: str | None,
    jobs: int | None,
    skip_copy: bool,
    resume: bool,
    continue_from: str | None,
    fail_fast: bool,
    dry_run: bool,
    fmt: str,
) -> None:
    """Rebuild the schemas of SELECTION in a warehouse from the latest extracts, then publish.

    A failed load publishes nothing and keeps its build: --resume rebuilds only what failed
    or was skipped, --continue-from RELATION rebuilds RELATION and everything after it. A load
    whose process was killed (abandoned) is resumed the same way.
    """
    project = _project(options)
    if dry_run:
        _show_plan(api.plan(project, "load", selection, env=env))
        return
    with RichReporter(options.verbosity if fmt == "table" else -1) as reporter:
        outcome = api.load(
            project,
            selection,
            env=env,
            jobs=jobs,
            reporter=reporter,
            skip_copy=skip_copy,
            resume=resume,
            continue_from=continue_from,
            fail_fast=fail_fast,
        )
    _finish(outcome, fmt, options)


@click.command()
@click.argument("kind", type=click.Choice(["settings", "design", "results", "all"]), default="all")
def schema(kind: str) -> None:
    """Print the JSON Schema of conveyor.yaml (settings), table designs (design) or run results (results).

    Point your editor's YAML language server at the first two for completion and checking.
    The third describes .conveyor/run_results.json, which every run writes (docs/results.md).
    """
    from conveyor.config.jsonschema import schemas
    from conveyor.results import json_schema

    documents = {**schemas(), "results": json_schema()}
    data = documents if kind == "all" else documents[kind]
    click.echo(json.dumps(data, indent=2))


@click.command()
@selection_arg
@env_option
@click.option("--source-name", help="The lake folder to write under data/ (default: unload_<env>).")
@dry_run_option
@format_option
@pass_options
def unload(
    options: Options, selection: tuple[str, ...], env: str | None, source_name: str | None, dry_run: bool, fmt: str
) -> None:
    """Export published relations of SELECTION into the lake as Parquet plus manifest.

    Another project can then read them with a source of type lake.
    """
    project = _project(options)
    if dry_run:
        _show_plan(api.plan(project, "unload", selection, env=env, source_name=source_name))
        return
    with RichReporter(options.verbosity if fmt == "table" else -1) as reporter:
        outcome = api.unload(project, selection, env=env, source_name=source_name, reporter=reporter)
    _finish(outcome, fmt, options)


def _moment(value: str | None) -> datetime | None:
    """An ISO-8601 time; without an offset it is local time."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f'"{value}" is not an ISO-8601 time such as 2026-11-21T02:30:00+01:00.') from None
    return moment if moment.tzinfo else moment.astimezone()


@click.command()
@selection_arg
@env_option
@click.option(
    "--scheduled-start-time", metavar="TIME", help="First wait for extracts that started after TIME (ISO-8601)."
)
@click.option(
    "--wait-timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait for those extracts."
)
@lock_timeout_option
@dry_run_option
@format_option
@pass_options
def update(
    options: Options,
    selection: tuple[str, ...],
    env: str | None,
    scheduled_start_time: str | None,
    wait_timeout: float,
    lock_timeout: float,
    dry_run: bool,
    fmt: str,
) -> None:
    """Refresh SELECTION and everything downstream of it in place, in one transaction.

    Source tables take their newest extracts (incremental ones are merged by primary key),
    CTAS relations are recomputed and views recreated. Any failure rolls everything back.
    """
    project = _project(options)
    start = _moment(scheduled_start_time)
    if dry_run:
        _show_plan(api.plan(project, "update", selection, env=env))
        return
    with RichReporter(options.verbosity if fmt == "table" else -1) as reporter:
        outcome = api.update(
            project,
            selection,
            env=env,
            reporter=reporter,
            scheduled_start_time=start,
            wait_timeout=wait_timeout,
            lock_timeout=lock_timeout,
        )
    _finish(outcome, fmt, options)


@click.command()
@selection_arg
@env_option
@click.option("--only-selected", is_flag=True, help="Rebuild only the selection, not what depends on it.")
@click.option("--into-schema", metavar="SCHEMA", help="Rebuild into this schema instead of in place (a sandbox).")
@lock_timeout_option
@dry_run_option
@format_option
@pass_options
def upgrade(
    options: Options,
    selection: tuple[str, ...],
    env: str | None,
    only_selected: bool,
    into_schema: str | None,
    lock_timeout: float,
    dry_run: bool,
    fmt: str,
) -> None:
    """Drop and rebuild SELECTION and its dependents in place: quick, for development, not atomic."""
    project = _project(options)
    if dry_run:
        found = api.plan(project, "upgrade", selection, env=env, only_selected=only_selected, into_schema=into_schema)
        _show_plan(found)
        return
    with RichReporter(options.verbosity if fmt == "table" else -1) as reporter:
        outcome = api.upgrade(
            project,
            selection,
            env=env,
            reporter=reporter,
            only_selected=only_selected,
            into_schema=into_schema,
            lock_timeout=lock_timeout,
        )
    _finish(outcome, fmt, options)


@click.group()
def show() -> None:
    """Show what Conveyor would run: DDL of relations."""


@show.command()
@selection_arg
@env_option
@format_option
@pass_options
def ddl(options: Options, selection: tuple[str, ...], env: str | None, fmt: str) -> None:
    """Print the DDL of the relations in SELECTION, in the environment's dialect.

    Tables get columns, types, NOT NULL, keys and comments from their designs; views their
    query with every name qualified.
    """
    project = _project(options)
    warehouse = api.open_environment(project, env)
    statements = [(r.name, api.relation_ddl(project, r, warehouse)) for r in project.select(selection)]
    if fmt == "json":
        print_json([{"relation": name, "statements": list(ddl)} for name, ddl in statements])
        return
    for _, ddl in statements:
        click.echo(";\n".join(ddl) + ";\n")
