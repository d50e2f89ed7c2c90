"""The dashboard in Debian's Chromium (headless, through Playwright): the runs list and its
filters and paging, a failed run's error, a warned test's failing rows, hostile names shown as
text, a run in progress whose timeline updates in place, and actions refused without the token."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from conveyor import api
from tests.web.dashboard import HOSTILE, TOKEN, Server


def run_ids(page: Any) -> list[str]:
    return page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")


def test_runs_list_filter_and_paging(server: Server, page: Any) -> None:
    page.goto(server.url + "/")
    assert page.title().startswith("Runs")
    first = run_ids(page)
    newest = [r.run_id for r in api.runs(api.open_project(server.root), limit=50)]
    assert first == newest and server.hostile_run in first
    # run ids are shown whole, never cut
    assert page.locator("#runs tbody tr td.id").all_inner_texts() == newest

    page.select_option("select[name=status]", "failed")
    page.fill("input[name=environment]", "prod")
    page.click("button[type=submit]")
    page.wait_for_url("**/?*status=failed*")
    statuses = page.locator("#runs tbody tr .status").all_inner_texts()
    assert statuses and set(statuses) == {"failed"}
    envs = page.locator("#runs tbody tr td:nth-child(3)").all_inner_texts()
    assert all("prod" in env for env in envs)

    on_first_page = run_ids(page)
    page.click("#older")
    page.wait_for_url("**before=*")
    second = run_ids(page)
    assert second and not set(second) & set(on_first_page)
    assert set(page.locator("#runs tbody tr .status").all_inner_texts()) == {"failed"}
    assert page.locator("select[name=status]").input_value() == "failed"
    page.click("a[rel=first]")
    assert run_ids(page) == on_first_page


def test_a_failed_run_shows_its_error_in_full(server: Server, page: Any) -> None:
    page.goto(server.url + "/")
    page.click(f"a[href='/runs/{server.failed_run}']")
    page.wait_for_url(f"**/runs/{server.failed_run}")
    assert page.locator("#run-status").inner_text() == "failed"
    error = page.locator("#errors pre.error").first.inner_text()
    assert "mart.top_customers" in page.locator("#errors").inner_text()
    _, events = api.run_events(api.open_project(server.root), server.failed_run)
    assert [error] == [e.error for e in events if e.status == "failed"]  # the whole text, with its file
    assert error.startswith("schemas/mart/top_customers.sql") and "Conversion Error" in error
    failed_bar = page.locator("#timeline tr.s-failed rect")
    assert failed_bar.count() == 1 and float(failed_bar.get_attribute("width")) > 0
    skipped = page.locator("#timeline tr.s-skipped td.rel").all_inner_texts()
    assert "mart.report" in skipped


def test_a_warned_test_shows_its_failing_rows(server: Server, page: Any) -> None:
    page.goto(f"{server.url}/runs/{server.ok_run}")
    failure = page.locator("article.failure")
    assert failure.count() == 1
    assert "big spenders only" in failure.locator("h3").inner_text()
    assert failure.locator("table.rows tbody tr").count() >= 1
    assert "total > 100" in failure.locator("pre.sql").inner_text()


def test_hostile_names_show_as_text(server: Server, page: Any) -> None:
    page.goto(f"{server.url}/runs/{server.hostile_run}")
    assert page.locator("#timeline td.rel").first.inner_text() == HOSTILE
    assert page.locator("#timeline td.env").first.inner_text() == "<i>dev</i>"
    assert "<b>nightly</b>" in page.locator("dl.facts").inner_text()
    assert page.evaluate("window.__pwned") is None
    page.goto(server.url + "/")
    assert page.evaluate("window.__pwned") is None


def test_a_run_in_progress_updates_in_place(server: Server, page: Any, paused_load: Callable[..., Any]) -> None:
    load = paused_load(server.root, "dev", "mart.top_customers")
    try:
        running = server.get("/api/runs?status=running&limit=1").json()["runs"]
        assert len(running) == 1
        run_id = running[0]["run_id"]
        page.goto(f"{server.url}/runs/{run_id}")
        assert page.locator("#run-status").inner_text() == "running"
        assert page.locator("#live").is_visible()
        page.evaluate("window.__samePage = true")  # gone if the page reloads
        rows_before = page.locator("#timeline tbody tr").count()
        duration = page.locator("#run-duration").inner_text()
        page.wait_for_function(
            "d => document.getElementById('run-duration').textContent !== d", arg=duration, timeout=10_000
        )
        assert page.evaluate("window.__samePage") is True, "the page reloaded instead of updating"
        assert page.locator("#timeline tbody tr").count() >= rows_before
        # the step at work ends now, which is the end of the run's span so far: its bar reaches the right edge
        bar = page.locator("#timeline tr.s-running rect").first
        assert abs(float(bar.get_attribute("x")) + float(bar.get_attribute("width")) - 1000) < 5
    finally:
        load.release()
    assert load.finish(timeout=120) == 0, load.output
    # the poll sees the end: the page shows the finished run (reloaded once, with its final sections)
    page.wait_for_function("() => document.getElementById('run-status').textContent === 'succeeded'", timeout=15_000)
    page.wait_for_load_state()
    assert not page.locator("#live").is_visible()
    statuses = set(page.locator("#timeline tbody tr .status").all_inner_texts())
    assert "running" not in statuses and "succeeded" in statuses
    assert page.locator("#timeline td.rel", has_text="mart.report").count() >= 1


def test_actions_are_refused_without_the_token(server: Server, page: Any) -> None:
    page.goto(server.url + "/")
    refused = page.evaluate(
        "async () => { const r = await fetch('/api/pipelines/nightly/pause', {method: 'POST'}); "
        "return [r.status, (await r.json()).error]; }"
    )
    assert refused[0] == 401 and "token" in refused[1]
    done = page.evaluate(
        "async t => { const r = await fetch('/api/pipelines/nightly/pause', "
        "{method: 'POST', headers: {Authorization: 'Bearer ' + t}}); return r.status; }",
        TOKEN,
    )
    assert done == 200
    resumed = page.evaluate(
        "async t => (await fetch('/api/pipelines/nightly/resume', "
        "{method: 'POST', headers: {Authorization: 'Bearer ' + t}})).status",
        TOKEN,
    )
    assert resumed == 200


def test_pages_render_quickly_in_the_browser(server: Server, page: Any) -> None:
    start = time.monotonic()
    page.goto(server.url + "/", wait_until="load")
    assert time.monotonic() - start < 5


def test_steps_that_appear_live_are_text_too(server: Server, page: Any) -> None:
    """A run in progress (recorded here through the store's API) gains a step with a hostile name:
    the page adds its row by itself, showing the name as text; the run's end reloads the page once."""
    from conveyor.tracking.store import TrackingStore, default_dsn

    with TrackingStore.open(default_dsn(server.root)) as store:
        run_id = store.start_run("load", project="testproj", environment="dev")
        first = store.start_event(run_id, "shop.orders", "load", environment="dev")
        try:
            page.goto(f"{server.url}/runs/{run_id}")
            assert page.locator("#timeline tbody tr").count() == 1
            store.finish_event(first, "succeeded", rows=5)
            store.start_event(run_id, HOSTILE, "build", environment="<i>dev</i>")
            page.wait_for_function("() => document.querySelectorAll('#timeline tbody tr').length === 2")
            row = page.locator("#timeline tbody tr").nth(1)
            assert row.locator("td.rel").inner_text() == HOSTILE
            assert row.locator("td.env").inner_text() == "<i>dev</i>"
            assert page.locator("#timeline tbody tr").first.locator(".status").inner_text() == "succeeded"
            assert page.evaluate("window.__pwned") is None
        finally:
            store.finish_run(run_id, "failed", error="stopped by the test")
    page.wait_for_function("() => document.getElementById('run-status').textContent === 'failed'")
    page.wait_for_load_state()
    assert page.locator("#run-error").inner_text() == "stopped by the test"
    assert page.evaluate("window.__pwned") is None
