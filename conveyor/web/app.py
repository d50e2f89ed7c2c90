"""The dashboard's routes: pages rendered on the server and a small JSON API.

Pages (``GET``): ``/`` the runs, ``/runs/{id}`` one run with its timeline, ``/lineage`` the DAG
around one relation, ``/relations/{name}`` one relation, ``/extracts`` the source tables and
``/extracts/{name}`` one table's extract history, ``/pipelines`` the pipelines with their
schedules, last runs and actions.

API (``GET``): ``/api/runs``, ``/api/runs/{id}``, ``/api/lineage``, ``/api/relations`` (search),
``/api/relations/{name}``, ``/api/extracts``, ``/api/extracts/{name}`` and ``/api/pipelines``:
what the pages show, as JSON (the run page polls its run's while it is in progress). Actions (``POST``) pass
:func:`conveyor.web.security.check_action`: ``/api/pipelines/{name}/pause``, ``/resume`` and
``/run`` (which starts the run in a process of its own: :mod:`conveyor.web.trigger`).

One tracking store is opened when the app starts and shared by every request (it is safe
across threads); the project's files are read once, at start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from conveyor import __version__, api
from conveyor.config.secrets import scrub
from conveyor.errors import ConveyorError, UserError
from conveyor.project import Project
from conveyor.tracking.models import RUN_STATUSES, RunRow
from conveyor.tracking.store import TrackingStore
from conveyor.web import views
from conveyor.web.lineage import MAX_DEPTH, MAX_SEARCH_LIMIT, SEARCH_LIMIT, Lineage
from conveyor.web.security import Guard, check_action, is_loopback

HERE = Path(__file__).parent
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
RECENT_RUNS = 5
RELATION_EVENTS = 60
"""The newest events of a relation its page reads (its sparklines follow those of its main step)."""
EXTRACT_HISTORY = 50
"""The newest extract attempts a source table's page lists."""
RELATION_SHOWN = 20
"""... and lists (``/api/relations/{name}`` lists them all)."""
"""The last runs the pipelines page lists per pipeline."""

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every value, in every template: a relation named <script> shows as text
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class BadRequest(Exception):
    """A query parameter the page cannot use; the message says which and what it takes."""


def create_app(
    project: Project,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    store: TrackingStore | None = None,
) -> Starlette:
    """The dashboard of ``project``.

    Args:
        project: The project whose tracking store it shows.
        token: The token actions require (``CONVEYOR_UI_TOKEN``); None refuses every action.
        host: The address the server binds to: on loopback, requests naming another host are refused.
        store: An open tracking store to use (closed with the app); by default the project's is opened.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.store = store or await run_in_threadpool(api.open_tracking, project)
        try:
            yield
        finally:
            app.state.store.close()

    def tracking(request: Request) -> TrackingStore:
        found: TrackingStore = request.app.state.store
        return found

    graph = Lineage.of(project.dag)
    order = project.dag.order()
    # a relation nothing reads, last in the build order: its lineage is the longest chain to show first
    default_focus = order[-1] if order else ""

    # -- pages -------------------------------------------------------------------------------

    def runs_page(request: Request) -> Response:
        query = RunQuery.of(request)
        found, older = query.fetch(tracking(request))
        now = datetime.now(UTC)
        return _page(
            "runs.html", title="Runs", runs=[views.run_item(r, now) for r in found], filters=query.shown,
            statuses=sorted(RUN_STATUSES), project=project.settings.name,
            older="?" + urlencode({**query.shown, "before": older}) if older else None,
            newest="?" + urlencode(query.shown) if query.before else None,
        )  # fmt: skip

    def run_page(request: Request) -> Response:
        run = tracking(request).get_run(request.path_params["run_id"])
        detail = views.run_detail(run, tracking(request).run_events(run.run_id))
        return _page("run.html", title=f"Run {run.run_id}", project=project.settings.name, **detail)

    def pipelines_page(request: Request) -> Response:
        found = pipeline_items(request)
        return _page(
            "pipelines.html", title="Pipelines", project=project.settings.name, pipelines=found, actions=bool(token)
        )

    def pipeline_items(request: Request) -> list[dict[str, Any]]:
        # what `conveyor pipeline list` shows, and each pipeline's last runs
        store, now = tracking(request), datetime.now(UTC)
        return [
            views.pipeline_item(row, store.list_runs(limit=RECENT_RUNS, pipeline=str(row["name"])), now)
            for row in api.pipelines(project)
        ]

    def lineage_page(request: Request) -> Response:
        if not graph.names:
            return _page("lineage.html", title="Lineage", project=project.settings.name, focus="", up=2, down=2,
                         depths=range(MAX_DEPTH + 1), relations=0)  # fmt: skip
        focus, up, down = lineage_query(request)
        return _page(
            "lineage.html", title=f"Lineage of {focus}", project=project.settings.name, focus=focus, up=up, down=down,
            depths=range(MAX_DEPTH + 1), relations=len(graph.names),
        )  # fmt: skip

    def lineage_query(request: Request) -> tuple[str, int, int]:
        params = request.query_params
        focus = params.get("focus") or default_focus
        graph.require(focus)
        return focus, _whole(params, "up", 2, 0, MAX_DEPTH), _whole(params, "down", 2, 0, MAX_DEPTH)

    def relation_page(request: Request) -> Response:
        detail = relation_detail(request)
        return _page(
            "relation.html", title=detail["name"], project=project.settings.name, r=detail, shown=RELATION_SHOWN
        )

    def relation_detail(request: Request) -> dict[str, Any]:
        name = request.path_params["name"]
        graph.require(name)
        events = tracking(request).relation_events(name, limit=RELATION_EVENTS)
        return views.relation_detail(project.relations[name], graph.dag.parents(name), graph.dag.children(name), events)

    def extracts_page(request: Request) -> Response:
        return _page("extracts.html", title="Extracts", project=project.settings.name, tables=extract_items(request))

    def extract_items(request: Request) -> list[dict[str, Any]]:
        # what `conveyor extract status` and `conveyor freshness` show, one row per source table
        from conveyor.extract.freshness import measure

        store = tracking(request)
        fresh = measure(project, project.select(()), store)
        states = {(s.source, s.table_name): s for s in store.extract_state()}
        items = [views.extract_item(f.relation, f.source, states.pop((f.source, f.relation), None), f) for f in fresh]
        # what the store still holds of tables no longer in the project (or keyed by their upstream name)
        return items + [views.extract_item(t, src, state, None) for (src, t), state in states.items()]

    def extract_page(request: Request) -> Response:
        name, source, attempts = extract_history(request)
        return _page(
            "extract.html", title=f"Extracts of {name}", project=project.settings.name, name=name, source=source,
            attempts=attempts, in_project=name in project.relations,
        )  # fmt: skip

    def extract_history(request: Request) -> tuple[str, str, list[dict[str, Any]]]:
        name = request.path_params["name"]
        store = tracking(request)
        relation = project.relations.get(name)
        if relation is not None and relation.source is not None:
            source = relation.source
        else:
            known = [s.source for s in store.extract_state(table=name)]
            if not known:
                raise UserError(
                    f'"{name}" is not a source table of the project, and the tracking store has no extract of it.',
                    hint="The extracts page lists every source table.",
                )
            source = known[0]
        found = store.list_extracts(source=source, table=name, limit=EXTRACT_HISTORY)
        return name, source, [views.extract_attempt(row) for row in found]

    # -- JSON --------------------------------------------------------------------------------

    def api_extracts(request: Request) -> Response:
        return JSONResponse({"tables": extract_items(request)})

    def api_extract(request: Request) -> Response:
        name, source, attempts = extract_history(request)
        return JSONResponse({"relation": name, "source": source, "extracts": attempts})

    def api_relation(request: Request) -> Response:
        return JSONResponse(relation_detail(request))

    def api_lineage(request: Request) -> Response:
        focus, up, down = lineage_query(request)
        ups, downs, _ = graph.neighbourhood(focus, up, down)
        last = tracking(request).latest_events([focus, *ups, *downs])
        return JSONResponse(views.scrubbed(graph.graph(focus, up, down, last)))

    def api_relations(request: Request) -> Response:
        limit = _whole(request.query_params, "limit", SEARCH_LIMIT, 1, MAX_SEARCH_LIMIT)
        found, total = graph.search(request.query_params.get("q", ""), limit)
        return JSONResponse({"relations": found, "total": total})

    def api_runs(request: Request) -> Response:
        found, older = RunQuery.of(request).fetch(tracking(request))
        now = datetime.now(UTC)
        return JSONResponse({"runs": [views.run_item(r, now) for r in found], "next_before": older})

    def api_run(request: Request) -> Response:
        run = tracking(request).get_run(request.path_params["run_id"])
        return JSONResponse(views.run_detail(run, tracking(request).run_events(run.run_id)))

    def api_pipelines(request: Request) -> Response:
        return JSONResponse({"pipelines": pipeline_items(request)})

    # -- actions -----------------------------------------------------------------------------

    def pipeline_action(status: str) -> Callable[[Request], Any]:
        async def act(request: Request) -> Response:
            refusal = await check_action(request, token)
            if refusal is not None:
                return refusal
            name = request.path_params["name"]
            await run_in_threadpool(api.set_pipeline_status, project, name, status)
            return JSONResponse({"pipeline": name, "status": status})

        return act

    async def pipeline_run(request: Request) -> Response:
        refusal = await check_action(request, token)
        if refusal is not None:
            return refusal
        from conveyor.web import trigger  # imported here: `python -m conveyor.web.trigger` runs it

        name = request.path_params["name"]
        started = await run_in_threadpool(trigger.start, project, name)
        store = tracking(request)

        def recorded() -> bool:
            try:
                return store.get_run(started.run_id).run_id == started.run_id
            except UserError:
                return False

        refused_because = await run_in_threadpool(trigger.wait_started, started, recorded)
        if refused_because is not None:
            return JSONResponse({"error": f"The run did not start: {refused_because}"}, status_code=409)
        return JSONResponse({"pipeline": name, "run_id": started.run_id, "status": "started"}, status_code=202)

    routes = [
        Route("/", runs_page, name="runs"),
        Route("/runs/{run_id}", run_page, name="run"),
        Route("/pipelines", pipelines_page, name="pipelines"),
        Route("/api/runs", api_runs),
        Route("/api/pipelines", api_pipelines),
        Route("/lineage", lineage_page, name="lineage"),
        Route("/api/lineage", api_lineage),
        Route("/api/relations", api_relations),
        Route("/relations/{name}", relation_page, name="relation"),
        Route("/extracts", extracts_page, name="extracts"),
        Route("/extracts/{name}", extract_page, name="extract"),
        Route("/api/extracts", api_extracts),
        Route("/api/extracts/{name}", api_extract),
        Route("/api/relations/{name}", api_relation),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/pipelines/{name}/pause", pipeline_action("paused"), methods=["POST"]),
        Route("/api/pipelines/{name}/resume", pipeline_action("active"), methods=["POST"]),
        Route("/api/pipelines/{name}/run", pipeline_run, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(Guard, loopback_only=is_loopback(host))],
        exception_handlers={
            ConveyorError: _conveyor_error,
            BadRequest: _bad_request,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )


@dataclass(frozen=True)
class RunQuery:
    """What the runs page and ``/api/runs`` list: filters, page size and keyset anchor, checked.

    Query parameters: ``pipeline``, ``environment``, ``command``, ``status``, ``date`` (a UTC
    day, ``2026-12-07``), ``limit`` (1 to 500, default 50) and ``before`` (a run id: the page
    of runs older than it).
    """

    pipeline: str | None = None
    environment: str | None = None
    command: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = PAGE_SIZE
    before: str | None = None
    shown: dict[str, str] = field(default_factory=dict)
    """The filters as given (not the anchor): what links to other pages keep."""

    @classmethod
    def of(cls, request: Request) -> RunQuery:
        """The query of a request.

        Raises:
            BadRequest: a parameter the page cannot use.
        """
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in RUN_STATUSES:
            raise BadRequest(f'status "{status}" is not a run status; use one of {", ".join(sorted(RUN_STATUSES))}.')
        try:
            limit = int(params.get("limit") or PAGE_SIZE)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.")
        since = until = None
        if params.get("date"):
            try:
                day = date.fromisoformat(params["date"])
            except ValueError:
                raise BadRequest(f'date "{params["date"]}" is not a day such as 2026-12-07.') from None
            since = datetime.combine(day, time(), tzinfo=UTC)
            until = since + timedelta(days=1)
        return cls(
            pipeline=params.get("pipeline") or None, environment=params.get("environment") or None,
            command=params.get("command") or None, status=status, since=since, until=until, limit=limit,
            before=params.get("before") or None,
            shown={k: v for k, v in params.items() if k in _SHOWN and v},
        )  # fmt: skip

    def fetch(self, store: TrackingStore) -> tuple[list[RunRow], str | None]:
        """The page's runs, newest first, and the anchor of the next (older) page, None on the last."""
        found = store.list_runs(
            limit=self.limit + 1, pipeline=self.pipeline, environment=self.environment, command=self.command,
            status=self.status, before=self.before, started_from=self.since, started_until=self.until,
        )  # fmt: skip
        page = found[: self.limit]
        return page, page[-1].run_id if len(found) > self.limit else None


def _whole(params: Any, key: str, default: int, low: int, high: int) -> int:
    """Query parameter ``key`` as a whole number from ``low`` to ``high`` (``default`` when absent).

    Raises:
        BadRequest: it is something else.
    """
    try:
        value = int(params.get(key) or default)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BadRequest(f"{key} must be a whole number from {low} to {high}.")
    return value


_SHOWN = ("pipeline", "environment", "status", "date", "command", "limit")


def _page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(version=__version__, **context)
    return HTMLResponse(html, status_code=status_code)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _problem(request: Request, status: int, message: str, hint: str | None = None) -> Response:
    message, hint = scrub(message), scrub(hint) if hint else None
    if _wants_json(request):
        return JSONResponse({"error": message, **({"hint": hint} if hint else {})}, status_code=status)
    return _page("problem.html", status, title="Not shown", status=status, message=message, hint=hint, project="")


async def _conveyor_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConveyorError)
    # a run id nothing matches (or an ambiguous prefix) is a page that is not there
    status = 404 if isinstance(exc, UserError) else 503
    return _problem(request, status, exc.message, exc.hint)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _problem(request, 400, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
    return _problem(request, exc.status_code, message)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # no detail of a bug goes to the browser: it may hold anything (the server's log has the traceback)
    return _problem(request, 500, "Internal error: this is a bug in Conveyor; the server's log has the details.")
