"""The pipelines, relation and extracts pages, over HTTP and in Debian's Chromium: what they show
against the API and the tracking store, actions through the page (with and without the token),
hostile names shown as text, and no secret anywhere."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor import api
from conveyor.tracking.store import TrackingStore, default_dsn
from tests.web.dashboard import HOSTILE, HOSTILE_ERROR, MARK, TOKEN, Server


@pytest.fixture(scope="module", autouse=True)
def hostile_pipeline(server: Server) -> Iterator[None]:
    """An installed pipeline named like a script (installed only: no file defines it)."""
    with TrackingStore.open(default_dsn(server.root)) as store:
        store.install_pipeline(
            HOSTILE, project="testproj", project_dir=str(server.root), schedule="cron */15 * * * *",
            definition={"steps": "full"}, now=datetime.now(UTC),
        )  # fmt: skip
        # a hostile step with a planted secret in its error, on a relation of the project
        now = datetime.now(UTC)
        store.record_event(
            server.hostile_run, "mart.report", HOSTILE, "failed", started_at=now, finished_at=now,
            error=f"{HOSTILE_ERROR}; the login used {server.canaries[0]}", environment="<i>dev</i>",
        )  # fmt: skip
        # an extract of a table no longer in the project, named like markup, its error with a secret
        store.start_extract(server.hostile_run, "shop", HOSTILE_TABLE, "x-hostile", upstream_table="<u>public.t</u>")
        store.finish_extract("x-hostile", "failed", error=f"{HOSTILE_ERROR}; password {server.canaries[0]}")
    yield


HOSTILE_TABLE = '<img src=x onerror="window.__pwned=1">'


def pipeline_status(server: Server, name: str = "nightly") -> str:
    with TrackingStore.open(default_dsn(server.root)) as store:
        return store.get_pipeline(name).status


# -- pipelines ------------------------------------------------------------------------------


def test_pipelines_api_is_what_pipeline_list_says(server: Server) -> None:
    listed = {r["name"]: r for r in api.pipelines(api.open_project(server.root))}
    body = server.get("/api/pipelines").json()["pipelines"]
    assert [p["name"] for p in body] == list(listed)
    nightly = next(p for p in body if p["name"] == "nightly")
    assert nightly["schedule_words"] == "every day at 02:30 UTC" and nightly["cron"] == "30 2 * * *"
    assert nightly["status"] == listed["nightly"]["status"] and nightly["next_run"]
    assert datetime.fromisoformat(nightly["next_run"]) == datetime.fromisoformat(str(listed["nightly"]["next_run"]))
    recent = [r.run_id for r in api.runs(api.open_project(server.root), limit=5, pipeline="nightly")]
    assert [r["run_id"] for r in nightly["runs"]] == recent and len(recent) == 5
    hostile = next(p for p in body if p["name"] == HOSTILE)
    assert hostile["definition"] == "not defined" and hostile["schedule_words"] == "every 15 minutes UTC"


@pytest.mark.parametrize(
    ("schedule", "words", "cron"),
    [
        ("nightly at 02:30 Europe/Berlin", "every day at 02:30 Europe/Berlin", "30 2 * * * Europe/Berlin"),
        ("@hourly", "every hour, on the hour UTC", "0 * * * *"),
        ("cron 0 6 * * 1 Europe/Paris", "every Monday at 06:00 Europe/Paris", "0 6 * * 1 Europe/Paris"),
        ("5 * * * *", "every hour at minute 5 UTC", "5 * * * *"),
        ("0 6 1,15 * *", "on a cron schedule UTC", "0 6 1,15 * *"),
        ("manual", "only when run by hand", ""),
        ("once at 2027-01-02T03:04:00+00:00", "once, at 2027-01-02 03:04:00 UTC", ""),
    ],
)
def test_schedules_in_words_and_cron(schedule: str, words: str, cron: str) -> None:
    from conveyor.web.views import schedule_words

    assert schedule_words(schedule) == (words, cron)


def test_pipelines_page_shows_names_as_text(server: Server) -> None:
    page = server.get("/pipelines").text
    assert HOSTILE not in page and html.escape(HOSTILE, quote=False) in page
    assert 'href="/runs/' in page and "every day at 02:30 UTC" in page


def row(page: Any, name: str) -> Any:
    return page.locator(f"tr[data-pipeline='{name}']")


def test_a_paused_pipeline_is_resumed_through_the_page_with_the_token(server: Server, page: Any) -> None:
    paused = server.post("/api/pipelines/nightly/pause", headers={"Authorization": f"Bearer {TOKEN}"})
    assert paused.status_code == 200 and pipeline_status(server) == "paused"
    page.goto(server.url + "/pipelines")
    nightly = row(page, "nightly")
    assert nightly.locator("td.st .status").inner_text() == "paused"
    assert nightly.locator("button.pause").is_hidden()

    # without the token: refused, said on the page, nothing changed
    nightly.locator("button.resume").click()
    page.wait_for_function("() => document.getElementById('action-message').textContent !== ''")
    assert "token" in page.locator("#action-message").inner_text()
    assert page.locator("#action-message.refused").count() == 1
    assert pipeline_status(server) == "paused" and nightly.locator("td.st .status").inner_text() == "paused"
    # a wrong token: refused too
    page.fill("#token", "not-the-token-at-all")
    nightly.locator("button.resume").click()
    page.wait_for_function("() => document.getElementById('action-message').textContent.includes('wrong')")
    assert pipeline_status(server) == "paused"

    page.fill("#token", TOKEN)
    page.press("#token", "Enter")  # submits nothing: the token never goes into a URL
    assert TOKEN not in page.url and page.locator("#token").input_value() == TOKEN
    nightly.locator("button.resume").click()
    page.wait_for_function(
        "() => document.querySelector(\"tr[data-pipeline='nightly'] td.st .status\").textContent === 'active'"
    )
    assert pipeline_status(server) == "active"
    assert page.locator("#action-message").inner_text() == "Resumed nightly."
    assert nightly.locator("button.resume").is_hidden() and nightly.locator("button.pause").is_visible()
    assert nightly.locator("td.next").inner_text().endswith("UTC")
    # the hostile pipeline's row: its name as text, its action reaches it
    hostile = page.locator("tr[data-pipeline]").filter(has_text="window.__pwned")
    assert hostile.locator("td.name").inner_text() == HOSTILE
    assert page.evaluate("window.__pwned") is None


def finished(server: Server, run_id: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    with TrackingStore.open(default_dsn(server.root)) as store:
        while time.monotonic() < deadline:
            run = store.get_run(run_id)
            if run.status != "running":
                return run
            time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def test_run_now_starts_the_pipeline_with_the_token(server: Server, page: Any) -> None:
    before = {r.run_id for r in api.runs(api.open_project(server.root), limit=20, pipeline="nightly")}
    assert server.post("/api/pipelines/nightly/run").status_code == 401
    own = {"Authorization": f"Bearer {TOKEN}"}
    assert (
        server.post("/api/pipelines/nightly/run", headers={**own, "Origin": "http://evil.example"}).status_code == 403
    )
    assert server.post("/api/pipelines/nosuch/run", headers=own).status_code == 404
    assert {r.run_id for r in api.runs(api.open_project(server.root), limit=20, pipeline="nightly")} == before

    page.goto(server.url + "/pipelines")
    page.fill("#token", TOKEN)
    row(page, "nightly").locator("button.run").click()
    page.wait_for_selector("#started-run")
    run_id = page.locator("#started-run").inner_text()
    assert page.locator("#action-message").inner_text().startswith("Started nightly: run")
    # the page's last runs now start with it
    page.wait_for_function(
        "id => document.querySelector(\"tr[data-pipeline='nightly'] td.last a\").title.startsWith(id)", arg=run_id
    )
    # a second run while the first holds the pipeline's lock is refused, and says why
    second = server.post("/api/pipelines/nightly/run", headers=own)
    run = finished(server, run_id)
    if second.status_code == 202:  # only if the first had ended already
        assert run.finished_at is not None and finished(server, second.json()["run_id"]).started_at > run.finished_at
    else:
        assert second.status_code == 409 and "did not start" in second.json()["error"], second.text
    assert run.pipeline == "nightly" and run.status == "succeeded", run.error
    page.click("#started-run")
    page.wait_for_url(f"**/runs/{run_id}")
    assert page.locator("#run-status").inner_text() == "succeeded"
    log = (server.root / ".conveyor" / "ui-runs" / f"{run_id}.log").read_text()
    assert f"run {run_id} succeeded" in log and MARK not in log


def test_last_runs_link_to_their_run_pages(server: Server, page: Any) -> None:
    page.goto(server.url + "/pipelines")
    link = row(page, "nightly").locator("td.last a").first
    run_id = link.get_attribute("title").split(":")[0]
    link.click()
    page.wait_for_url(f"**/runs/{run_id}")
    assert page.locator("h1 .id").inner_text() == run_id


# -- lineage --------------------------------------------------------------------------------


def test_lineage_of_the_test_project(server: Server, page: Any) -> None:
    project = api.open_project(server.root)
    last = project.dag.order()[-1]
    page.goto(server.url + "/lineage")
    page.wait_for_selector(f"#graph[data-focus='{last}']")
    shown = set(page.locator("#graph g.node").evaluate_all("gs => gs.map(g => g.dataset.name)"))
    assert shown == {last} | project.dag.upstream(last, 2)
    # coloured by the newest event of each relation, as the store has it
    with TrackingStore.open(default_dsn(server.root)) as store:
        newest = store.latest_events(sorted(shown))
    for name in shown:
        css = page.locator(f"#graph g.node[data-name='{name}']").get_attribute("class")
        assert f"s-{newest[name].status if name in newest else 'none'}" in css.split()
    groups = page.locator("#graph text.group").evaluate_all("ts => ts.map(t => t.textContent)")
    assert set(groups) == {n.split(".")[0] for n in shown}


# -- a relation -----------------------------------------------------------------------------


def test_relation_api_against_the_project_and_the_store(server: Server) -> None:
    project = api.open_project(server.root)
    body = server.get("/api/relations/mart.customer_totals").json()
    relation = project.relations["mart.customer_totals"]
    assert body["kind"] == "ctas" and body["description"] == "Order totals per customer"
    assert body["sql"] == relation.sql and body["parents"] == project.dag.parents("mart.customer_totals")
    assert body["tests"] == ['expression: {"severity": "warn", "name": "big spenders only", "sql": "total > 100"}']
    with TrackingStore.open(default_dsn(server.root)) as store:
        events = store.relation_events("mart.customer_totals", limit=60)
    assert [b["id"] for b in body["builds"]] == [e.id for e in events]
    builds = [e for e in events if e.step == "build" and e.status == "succeeded"][:30]
    assert body["spark"]["step"] == "build" and body["spark"]["runs"] == len(builds) >= 2
    points = body["spark"]["time"].split()
    assert len(points) == sum(1 for e in builds if e.duration_s is not None)
    # the chart's last point is the newest build; the highest point (smallest y) its longest
    ys = [float(p.split(",")[1]) for p in points]
    longest = max(range(len(builds)), key=lambda i: builds[::-1][i].duration_s or 0)
    assert ys[longest] == min(ys)
    source = server.get("/api/relations/shop.customers").json()
    assert source["kind"] == "source" and source["columns"] and source["source"]


def test_relation_page_in_the_browser(server: Server, page: Any) -> None:
    page.goto(server.url + "/lineage?focus=mart.customer_totals")
    page.wait_for_selector("#graph[data-drawn]")
    page.click("#relation-link")
    page.wait_for_url("**/relations/mart.customer_totals")
    assert page.locator("#relation-name").inner_text() == "mart.customer_totals"
    assert (
        page.locator("#sql").inner_text().strip()
        == api.open_project(server.root).relations["mart.customer_totals"].sql.strip()
    )
    assert page.locator("#spark-time polyline").get_attribute("points")
    assert page.locator("#spark-rows polyline").get_attribute("points")
    assert page.locator("#builds tbody tr").count() > 2
    page.locator("#parents a").first.click()
    page.wait_for_url("**/relations/shop.*")
    assert page.locator("#columns tbody tr").count() >= 2


def test_relation_page_shows_names_and_sql_as_text(server: Server, page: Any) -> None:
    text = server.get("/relations/mart.report").text
    assert HOSTILE not in text and "<img" not in text and "<i>dev" not in text
    assert html.escape(HOSTILE, quote=False) in text
    top = server.get("/relations/mart.top_customers").text
    sql = api.open_project(server.root).relations["mart.top_customers"].sql
    assert ">" in sql and html.escape(sql, quote=False) in top
    page.goto(server.url + "/relations/mart.report")
    steps = page.locator("#builds tbody tr td:nth-child(2)").all_inner_texts()
    assert HOSTILE in steps
    assert page.evaluate("window.__pwned") is None
    missing = server.get("/relations/%3Cb%3Enope.x")
    assert missing.status_code == 404 and "&lt;b&gt;nope" in missing.text


# -- extracts -------------------------------------------------------------------------------


def test_extracts_api_is_extract_status_and_freshness(server: Server) -> None:
    project = api.open_project(server.root)
    states = {s.table_name: s for s in api.extract_status(project)}
    fresh = {f.relation: f for f in api.freshness(project)}
    tables = server.get("/api/extracts").json()["tables"]
    assert [t["relation"] for t in tables if t["in_project"]] == list(fresh)
    assert {t["relation"] for t in tables} == set(fresh) | set(states)
    for table in tables:
        state = states.get(table["relation"])
        assert state is not None  # every source table of the test project was extracted
        assert (table["status"], table["rows"], table["bytes"]) == (state.status, state.rows, state.bytes)
        assert table["last_success_at"] == (
            state.last_success_at.isoformat(timespec="microseconds") if state.last_success_at else None
        )
        if table["in_project"]:
            assert table["freshness"] == fresh[table["relation"]].status and table["age"]
    orders = next(t for t in tables if t["relation"] == "shop.orders")
    assert orders["watermark"].startswith(orders["watermark"].split(" = ")[0] + " = ") or orders["watermark"] == ""


def test_extract_history_is_the_stores(server: Server, page: Any) -> None:
    with TrackingStore.open(default_dsn(server.root)) as store:
        found = store.list_extracts(source="shop", table="shop.customers", limit=50)
    body = server.get("/api/extracts/shop.customers").json()
    assert [e["run_id"] for e in body["extracts"]] == [e.run_id for e in found] and found
    page.goto(server.url + "/extracts")
    page.click("a[href='/extracts/shop.customers']")
    page.wait_for_url("**/extracts/shop.customers")
    assert page.locator("#history tbody tr").count() == len(found)
    assert page.locator("#history tbody tr .status").first.inner_text() == found[0].status
    assert server.get("/extracts/nosuch.table").status_code == 404


def test_extracts_pages_show_names_as_text(server: Server, page: Any) -> None:
    listing = server.get("/extracts").text
    assert HOSTILE_TABLE not in listing and "<u>" not in listing and "<img" not in listing
    assert "&lt;img src=x onerror=" in listing
    page.goto(server.url + "/extracts")
    row = page.locator("tr.table").filter(has_text="not in the project")
    assert row.locator("td.id a").inner_text() == HOSTILE_TABLE
    row.locator("td.id a").click()
    page.wait_for_selector("#extract-name")
    assert page.locator("#extract-name").inner_text() == HOSTILE_TABLE
    assert "***" in page.locator("#history td.err").get_attribute("title")
    assert page.evaluate("window.__pwned") is None


# -- every page -------------------------------------------------------------------------------

PAGES = [
    "/pipelines", "/api/pipelines", "/lineage", "/lineage?focus=mart.customer_totals&up=3&down=3",
    "/api/lineage?focus=mart.customer_totals&up=3&down=3", "/api/relations?q=", "/api/relations?q=mart",
    "/static/pipelines.js", "/static/lineage.js", "/relations/mart.report", "/api/relations/mart.report",
    "/relations/mart.customer_totals", "/relations/shop.customers", "/api/relations/shop.customers",
    "/extracts", "/api/extracts", "/extracts/shop.customers", "/api/extracts/shop.customers",
    f"/extracts/{HOSTILE_TABLE}", f"/api/extracts/{HOSTILE_TABLE}",
]  # fmt: skip


def test_no_secret_in_the_new_pages(server: Server) -> None:
    for path in PAGES:
        response = server.get(path)
        assert response.status_code == 200, path
        assert MARK not in response.text, path
        assert MARK not in "".join(response.headers.values()), path
