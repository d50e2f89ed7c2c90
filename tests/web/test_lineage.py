"""The lineage page on a generated project of 5,000 relations (tests/web/bigdag.py): the API's
neighbourhood against the generator's own parents, search, statuses from the tracking store,
and in Debian's Chromium: time to interactive, search and focus, refocus by a click, hostile
input shown as text."""

from __future__ import annotations

import html
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.tracking.store import TrackingStore, default_dsn
from conveyor.web.lineage import MAX_SIDE
from tests.web.bigdag import generate
from tests.web.dashboard import HOSTILE, start_ui, stop

N = 5000
FAILED = "s01.t04001"
SUCCEEDED = "s02.t03314"  # a parent of FAILED
MARKUP = "s00.<script>"
"""A relation named like markup (a file name may hold it; not a space or a slash), reading FAILED."""


class Big:
    def __init__(self, url: str, root: Path, parents: dict[str, list[str]]):
        self.url, self.root, self.parents = url, root, parents
        self.children: dict[str, list[str]] = {name: [] for name in parents}
        for name, ps in parents.items():
            for p in ps:
                self.children[p].append(name)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    """``conveyor ui`` over the 5,000-relation project, with a few events in its store."""
    root = tmp_path_factory.mktemp("bigdag") / "project"
    parents = generate(root, N)
    schema, table = MARKUP.split(".", 1)
    (root / "schemas" / schema / f"{table}.yaml").write_text(f"name: '{MARKUP}'\nkind: ctas\n")
    (root / "schemas" / schema / f"{table}.sql").write_text(f"SELECT x FROM {FAILED}\n")
    parents[MARKUP] = [FAILED]
    now = datetime.now(UTC)
    with TrackingStore.open(default_dsn(root)) as store:
        run = store.start_run("run", project="bigdag", environment="development")
        for relation, status, ago in ((SUCCEEDED, "failed", 60), (SUCCEEDED, "succeeded", 30), (FAILED, "failed", 20)):
            at = now - timedelta(seconds=ago)
            store.record_event(run, relation, "build", status, started_at=at, finished_at=at + timedelta(seconds=1))
        store.finish_run(run, "failed", error="one build failed")
    process, url, _ = start_ui(root, {})
    yield Big(url, root, parents)
    stop(process)


def reach(start: str, edges: dict[str, list[str]], depth: int) -> set[str]:
    found: set[str] = set()
    level = {start}
    for _ in range(depth):
        level = {n for name in level for n in edges[name]} - found - {start}
        found |= level
    return found


@pytest.mark.parametrize(("focus", "up", "down"), [(FAILED, 3, 3), ("s03.t02667", 2, 2), ("s05.t00005", 1, 1)])
def test_the_neighbourhood_is_the_generators(big: Big, focus: str, up: int, down: int) -> None:
    body = big.get("/api/lineage", params={"focus": focus, "up": up, "down": down}).json()
    names = {n["name"] for n in body["nodes"]}
    ups, downs = reach(focus, big.parents, up), reach(focus, big.children, down)
    if not body["capped"]:
        assert names == {focus} | ups | downs
    else:
        assert names <= {focus} | ups | downs and len(names) <= 2 * MAX_SIDE + 1
    assert body["parents"] == sorted(big.parents[focus]) and body["children"] == sorted(big.children[focus])
    at = {n["name"]: n for n in body["nodes"]}
    assert sorted(map(tuple, body["edges"])) == sorted((p, c) for c in names for p in big.parents[c] if p in names)
    for p, c in body["edges"]:
        assert at[p]["x"] < at[c]["x"], (p, c)  # every edge goes left to right
    for n in body["nodes"]:
        assert n["hidden_up"] == sum(1 for p in big.parents[n["name"]] if p not in names)
        assert n["hidden_down"] == sum(1 for c in big.children[n["name"]] if c not in names)


def test_a_busy_relation_is_capped(big: Big) -> None:
    body = big.get("/api/lineage", params={"focus": "s01.t00001", "up": 0, "down": 10}).json()
    assert body["capped"] and body["downstream"] == MAX_SIDE and len(body["nodes"]) == MAX_SIDE + 1


def test_nodes_carry_their_newest_status(big: Big) -> None:
    body = big.get("/api/lineage", params={"focus": FAILED, "up": 1, "down": 0}).json()
    status = {n["name"]: n["status"] for n in body["nodes"]}
    assert status[FAILED] == "failed" and status[SUCCEEDED] == "succeeded"
    assert {s for n, s in status.items() if n not in (FAILED, SUCCEEDED)} == {"none"}


def test_search_is_a_bounded_filter(big: Big) -> None:
    body = big.get("/api/relations", params={"q": "T040"}).json()
    matching = sorted(n for n in big.parents if "t040" in n)
    assert body["total"] == len(matching) == 100 and len(body["relations"]) == 50
    assert {r["name"] for r in body["relations"]} <= set(matching)
    assert big.get("/api/relations", params={"q": "t04001"}).json()["relations"][0]["name"] == FAILED
    assert big.get("/api/relations", params={"q": HOSTILE}).json() == {"relations": [], "total": 0}
    assert big.get("/api/relations", params={"limit": 1000}).status_code == 400


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/lineage?focus=nosuch.relation", 404, "no relation"),
        ("/api/lineage?focus=s01.t04001&up=11", 400, "up must be"),
        ("/api/lineage?focus=s01.t04001&down=x", 400, "down must be"),
        ("/lineage?focus=%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E", 404, "&lt;script&gt;"),
    ],
)
def test_bad_lineage_requests(big: Big, path: str, status: int, says: str) -> None:
    response = big.get(path)
    assert response.status_code == status and says in response.text
    assert "<script>window" not in response.text


def drawn_after(page: Any, url: str) -> float:
    """Milliseconds from the navigation's start until the focused graph is drawn."""
    page.goto(url)
    page.wait_for_selector("#graph[data-drawn]")
    return float(page.evaluate("window.__lineageDrawnAt"))


def test_time_to_interactive_at_5000_relations(big: Big, page: Any) -> None:
    times = [
        drawn_after(page, f"{big.url}/lineage?focus={focus}&up=2&down=3")
        for focus in ("s01.t00001", FAILED, "s03.t02667")
    ]
    assert statistics.median(times) <= 2000, times
    # the page draws the neighbourhood only: a bounded number of elements
    assert page.locator("#graph g.node").count() <= 2 * MAX_SIDE + 1


def test_search_and_focus_in_the_browser(big: Big, page: Any) -> None:
    page.goto(f"{big.url}/lineage?focus=s00.t00008")
    page.wait_for_selector("#graph[data-focus='s00.t00008']")
    page.fill("#search", "t04001")
    page.wait_for_selector("#results button[data-name]")
    assert page.locator("#results button").first.inner_text() == FAILED
    page.locator("#results button").first.click()
    page.wait_for_selector(f"#graph[data-focus='{FAILED}']")
    assert page.url.endswith(f"/lineage?focus={FAILED}&up=2&down=2")
    assert page.locator("#focus-name").inner_text() == FAILED
    focus = page.locator("#graph g.node.focus")
    assert focus.get_attribute("data-name") == FAILED and "s-failed" in focus.get_attribute("class")
    parent = page.locator(f"#graph g.node[data-name='{SUCCEEDED}']")
    assert "s-succeeded" in parent.get_attribute("class")
    assert page.locator("#graph g.node").count() == len(
        {FAILED} | reach(FAILED, big.parents, 2) | reach(FAILED, big.children, 2)
    )
    # a click on a node focuses it; the depth controls redraw; back returns
    parent.click()
    page.wait_for_selector(f"#graph[data-focus='{SUCCEEDED}']")
    page.select_option("#up", "1")
    page.wait_for_function("() => location.search.includes('up=1')")
    expected = {SUCCEEDED} | reach(SUCCEEDED, big.parents, 1) | reach(SUCCEEDED, big.children, 2)
    page.wait_for_function(f"() => document.querySelectorAll('#graph g.node').length === {len(expected)}")
    page.go_back()
    page.go_back()
    page.wait_for_selector(f"#graph[data-focus='{FAILED}']")
    assert page.locator("a#relation-link").get_attribute("href") == f"/relations/{FAILED}"


def test_a_relation_named_like_markup_is_text(big: Big, page: Any) -> None:
    assert big.get("/api/relations", params={"q": "<scr"}).json()["relations"][0]["name"] == MARKUP
    page.goto(f"{big.url}/lineage?focus={FAILED}&up=1&down=1")
    page.wait_for_selector("#graph[data-drawn]")
    page.fill("#search", "<script")
    page.wait_for_selector("#results button[data-name]")
    assert page.locator("#results button").first.inner_text() == MARKUP
    page.locator("#results button").first.click()
    page.wait_for_function("name => document.getElementById('graph').dataset.focus === name", arg=MARKUP)
    assert page.locator("#focus-name").inner_text() == MARKUP
    assert page.locator("#graph g.node.focus text").first.text_content() == MARKUP
    assert page.evaluate("window.__pwned") is None
    page.click("#relation-link")
    page.wait_for_selector("#relation-name")
    assert page.locator("#relation-name").inner_text() == MARKUP
    assert page.locator("#parents a").inner_text() == FAILED
    assert page.evaluate("window.__pwned") is None
    text = big.get(f"/relations/{MARKUP}").text
    assert MARKUP not in text and "s00.&lt;script&gt;" in text


def test_hostile_search_is_text(big: Big, page: Any) -> None:
    page.goto(f"{big.url}/lineage?focus={FAILED}")
    page.wait_for_selector("#graph[data-drawn]")
    page.fill("#search", HOSTILE)
    page.wait_for_selector("#results li.more")
    assert page.locator("#results li.more").inner_text() == "No relation matches."
    assert page.evaluate("window.__pwned") is None
    text = big.get("/lineage", params={"focus": HOSTILE}).text
    assert html.escape(HOSTILE, quote=False) in text and HOSTILE not in text
