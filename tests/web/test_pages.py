"""The pipelines, relation and extracts pages, over HTTP and in Debian's Chromium: what they show
against the API and the tracking store, actions through the page (with and without the token),
hostile names shown as text, and no secret anywhere."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor import api
from conveyor.tracking.store import TrackingStore, default_dsn
from tests.web.dashboard import HOSTILE, MARK, TOKEN, Server


@pytest.fixture(scope="module", autouse=True)
def hostile_pipeline(server: Server) -> Iterator[None]:
    """An installed pipeline named like a script (installed only: no file defines it)."""
    with TrackingStore.open(default_dsn(server.root)) as store:
        store.install_pipeline(
            HOSTILE, project="testproj", project_dir=str(server.root), schedule="cron */15 * * * *",
            definition={"steps": "full"}, now=datetime.now(UTC),
        )  # fmt: skip
    yield


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


# -- every page -------------------------------------------------------------------------------

PAGES = [
    "/pipelines", "/api/pipelines", "/lineage", "/lineage?focus=mart.customer_totals&up=3&down=3",
    "/api/lineage?focus=mart.customer_totals&up=3&down=3", "/api/relations?q=", "/api/relations?q=mart",
    "/static/pipelines.js", "/static/lineage.js",
]  # fmt: skip


def test_no_secret_in_the_new_pages(server: Server) -> None:
    for path in PAGES:
        response = server.get(path)
        assert response.status_code == 200, path
        assert MARK not in response.text, path
        assert MARK not in "".join(response.headers.values()), path
