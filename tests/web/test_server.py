"""The dashboard over HTTP: the JSON API against the tracking store, paging through 10,000 runs,
escaping, the secret canary, and the guard of actions (token, origin, host)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from testkit.cli import CliResult

from conveyor import api
from conveyor.tracking.store import TrackingStore, default_dsn
from tests.web.dashboard import HOSTILE, HOSTILE_ERROR, MARK, TOKEN, Server, start_ui, stop


def store_runs(server: Server, **filters: object) -> list[str]:
    with TrackingStore.open(default_dsn(server.root)) as store:
        return [r.run_id for r in store.list_runs(limit=20_000, **filters)]  # type: ignore[arg-type]


def test_runs_api_lists_what_the_store_holds_newest_first(server: Server) -> None:
    body = server.get("/api/runs?limit=5").json()
    assert [r["run_id"] for r in body["runs"]] == store_runs(server)[:5]
    assert body["runs"][0]["run_id"] == server.hostile_run
    ok = next(r for r in server.get("/api/runs?limit=10").json()["runs"] if r["run_id"] == server.ok_run)
    assert ok["status"] == "succeeded" and ok["what"] == "run" and ok["environments"] == ["dev"]
    assert re.fullmatch(r"\d[\d,]* extracted · \d[\d,]* loaded", ok["rows_detail"]), ok["rows_detail"]
    recorded = next(r for r in api.runs(api.open_project(server.root), limit=5) if r.run_id == server.ok_run)
    assert recorded.summary and ok["rows"] == recorded.summary["loaded_rows"]


def test_rows_of_commands_and_pipelines(server: Server) -> None:
    """A command's summary and a pipeline's name their row counts differently; the list shows both."""
    runs = server.get("/api/runs", params={"limit": 200}).json()["runs"]
    pipelines = [r for r in runs if r["pipeline"] in ("nightly", "hourly")]
    commands = [r for r in runs if r["pipeline"] is None and r["status"] != "running"]
    for run in pipelines + commands:
        assert run["rows"] is not None and run["rows_detail"].endswith(f"{run['rows']:,} loaded"), run
    assert all(r["environments"] == ["dev", "prod"] for r in pipelines)


def test_keyset_paging_visits_every_run_once_in_order(server: Server) -> None:
    """Pages of 500 through 10,003 runs, each page anchored on the last run of the one before."""
    seen: list[str] = []
    before = None
    while True:
        body = server.get("/api/runs", params={"limit": 500, **({"before": before} if before else {})}).json()
        seen += [r["run_id"] for r in body["runs"]]
        before = body["next_before"]
        if before is None:
            break
    assert seen == store_runs(server)
    assert len(seen) == server.history.runs + 3


@pytest.mark.parametrize(
    ("params", "filters"),
    [
        ({"status": "failed"}, {"status": "failed"}),
        ({"environment": "prod"}, {"environment": "prod"}),
        ({"pipeline": "hourly"}, {"pipeline": "hourly"}),
        ({"pipeline": "nightly", "environment": "dev", "status": "succeeded"}, {}),
    ],
)
def test_filters_match_the_store(server: Server, params: dict[str, str], filters: dict[str, str]) -> None:
    expected = store_runs(server, **(filters or params))[:200]
    body = server.get("/api/runs", params={**params, "limit": 200}).json()
    assert [r["run_id"] for r in body["runs"]] == expected
    assert expected, "the generated history has runs for every filter"
    for key, value in params.items():
        for run in body["runs"]:
            assert value in (run["environments"] if key == "environment" else [run[key]])


def test_date_filter_keeps_one_utc_day(server: Server) -> None:
    day = server.history.oldest.date().isoformat()
    runs = server.get("/api/runs", params={"date": day, "limit": 500}).json()["runs"]
    assert runs and all(r["started_at"].startswith(day) for r in runs)
    # the day's runs, as the store has them: every run started that day
    assert len(runs) == sum(1 for r in store_runs(server) if r.startswith(day.replace("-", "")))


def test_run_api_has_every_event_and_the_error_in_full(server: Server) -> None:
    run, events = api.run_events(api.open_project(server.root), server.failed_run)
    body = server.get(f"/api/runs/{server.failed_run}").json()
    assert body["run"]["status"] == "failed" == run.status
    assert [e["id"] for e in body["timeline"]] == [e.id for e in events]
    assert [(e["relation"], e["status"], e["rows"]) for e in body["timeline"]] == [
        (e.relation, e.status, e.rows) for e in events
    ]
    failed = [e for e in events if e.status == "failed"]
    assert failed and [x["error"] for x in body["errors"]] == [e.error for e in failed if e.step != "test"]
    assert "Conversion Error" in body["errors"][0]["error"]
    for bar in body["timeline"]:
        assert 0 <= bar["x"] <= 1000 and bar["w"] > 0 and bar["x"] + bar["w"] <= 1002


def test_warned_test_carries_its_failing_rows(server: Server) -> None:
    tests = server.get(f"/api/runs/{server.ok_run}").json()["tests"]
    warned = [t for t in tests if t["status"] == "warned"]
    assert [t["test"] for t in warned] == ["big spenders only"]
    assert warned[0]["columns"] and warned[0]["rows"], warned
    assert "total > 100" in warned[0]["sql"]


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/runs?status=done", 400, "not a run status"),
        ("/api/runs?limit=0", 400, "limit"),
        ("/api/runs?date=yesterday", 400, "not a day"),
        ("/api/runs?before=nosuchrun", 404, "no run"),
        ("/api/runs/nosuchrun", 404, "no run id starts with"),
        ("/?status=%3Cb%3E", 400, "&lt;b&gt;"),
        ("/runs/nosuchrun", 404, "no run id starts with"),
        ("/nowhere", 404, "no such page"),
    ],
)
def test_bad_requests_say_what_is_wrong(server: Server, path: str, status: int, says: str) -> None:
    response = server.get(path)
    assert response.status_code == status
    assert says in response.text
    assert "Traceback" not in response.text


def test_run_prefix_and_last_find_the_run(server: Server) -> None:
    assert server.get(f"/api/runs/{server.ok_run[:20]}").json()["run"]["run_id"] == server.ok_run
    assert server.get("/api/runs/last").json()["run"]["run_id"] == server.hostile_run


def test_hostile_names_are_text(server: Server) -> None:
    page = server.get(f"/runs/{server.hostile_run}").text
    assert HOSTILE not in page and "<b>nightly" not in page and "<img" not in page
    assert html.escape(HOSTILE, quote=False) in page
    assert html.escape(HOSTILE_ERROR, quote=True).split(";")[0] in page
    assert "&lt;b&gt;nightly&lt;/b&gt;" in server.get("/").text


def test_no_secret_in_any_page_or_response(server: Server) -> None:
    """The canaries planted in the store (a source's password, a URL's password) never come back."""
    paths = ["/", "/?status=failed", "/?pipeline=%3Cb%3Enightly%3C%2Fb%3E", "/api/runs", "/api/runs?limit=500"]
    for run_id in (server.ok_run, server.failed_run, server.hostile_run, *server.history.failed[:5]):
        paths += [f"/runs/{run_id}", f"/api/runs/{run_id}"]
    paths += ["/runs/nosuchrun", "/api/runs/nosuchrun", "/static/conveyor.css", "/static/run.js"]
    for path in paths:
        response = server.get(path)
        assert MARK not in response.text, path
        assert MARK not in "".join(response.headers.values()), path
    hostile = server.get(f"/api/runs/{server.hostile_run}").json()
    assert "***" in hostile["run"]["error"] and "***" in hostile["errors"][0]["error"]


def test_pages_load_nothing_from_elsewhere(server: Server) -> None:
    page = server.get(f"/runs/{server.ok_run}").text + server.get("/").text
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith(("/", "?", "data:")), url
    headers = server.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"


# -- actions ------------------------------------------------------------------------------


def pipeline_status(server: Server) -> str:
    with TrackingStore.open(default_dsn(server.root)) as store:
        return store.get_pipeline("nightly").status


def test_an_action_needs_the_token(server: Server) -> None:
    pause = "/api/pipelines/nightly/pause"
    assert server.post(pause).status_code == 401
    assert server.post(pause, headers={"Authorization": "Bearer wrong-token-of-some-length"}).status_code == 401
    assert server.post(pause, data={"token": "wrong"}).status_code == 401
    assert pipeline_status(server) == "active"

    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = server.post(pause, headers=auth)
    assert response.status_code == 200, response.text
    assert pipeline_status(server) == "paused"
    response = server.post("/api/pipelines/nightly/resume", data={"token": TOKEN})
    assert response.status_code == 200 and pipeline_status(server) == "active"
    assert server.post("/api/pipelines/nosuch/pause", headers=auth).status_code == 404
    assert server.get(pause).status_code == 405


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_an_action_from_another_site_is_refused_even_with_the_token(server: Server, headers: dict[str, str]) -> None:
    response = server.post("/api/pipelines/nightly/pause", headers={"Authorization": f"Bearer {TOKEN}", **headers})
    assert response.status_code == 403 and "another site" in response.json()["error"]
    assert pipeline_status(server) == "active"


def test_an_action_from_the_dashboard_itself_passes(server: Server) -> None:
    own = {"Origin": server.url, "Sec-Fetch-Site": "same-origin", "Authorization": f"Bearer {TOKEN}"}
    assert server.post("/api/pipelines/nightly/pause", headers=own).status_code == 200
    assert server.post("/api/pipelines/nightly/resume", headers=own).status_code == 200
    assert pipeline_status(server) == "active"


def test_a_foreign_host_name_is_refused(server: Server) -> None:
    """DNS rebinding: a name pointed at 127.0.0.1 by a hostile page does not reach the dashboard."""
    assert server.get("/api/runs", headers={"Host": "evil.example"}).status_code == 421
    assert server.get("/api/runs", headers={"Host": "localhost:1234"}).status_code == 200


def test_without_a_token_the_dashboard_is_read_only(server: Server) -> None:
    process, url, lines = start_ui(server.root, {"CONVEYOR_UI_TOKEN": ""})
    try:
        import httpx

        assert "Read-only" in "".join(lines)
        response = httpx.post(url + "/api/pipelines/nightly/pause", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 403 and "Actions are off" in response.json()["error"]
        assert httpx.get(url + "/api/runs?limit=1").status_code == 200
    finally:
        assert stop(process) == 0
    assert "Stopped." in "".join(lines)


def test_bad_command_lines(server: Server, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    short = cli("ui", cwd=server.root, env={"CONVEYOR_UI_TOKEN": "short"})
    assert short.code == 2 and "can be guessed" in short.output and "Traceback" not in short.output
    busy = cli("ui", "--port", server.url.rsplit(":", 1)[1], cwd=server.root)
    assert busy.code == 2 and "in use" in busy.output
    nowhere = cli("ui", "--port", "0", cwd=tmp_path)
    assert nowhere.code == 2 and "conveyor.yaml" in nowhere.output


def test_an_unreachable_store_is_the_commands_error(
    make_project: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    from tests.conftest import CONVEYOR_YAML

    root = make_project(settings=CONVEYOR_YAML + "tracking:\n  dsn: postgresql://postgres@127.0.0.1:1/nothing\n")
    done = cli("ui", "--port", "0", cwd=root, timeout=60)
    assert done.code == 1 and "cannot connect to the tracking store" in done.output
    assert "Traceback" not in done.output and "dashboard of" not in done.output
