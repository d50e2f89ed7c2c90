"""Secrets in dead-man and notification URLs never reach the terminal, the logs or the store.

The URLs come whole from ``${VAR}`` (a healthchecks.io-style ping URL, a JSON webhook) or
carry a token (Slack tokens, a webhook's path); one dead-man endpoint and one webhook answer
500, so the failure messages (which quote URLs) are printed too. ``pipeline run`` runs as a
real process (plain, ``-v``, ``--debug``, ``--format json``), and the scheduler as a real
process at INFO level, alerting a missed run from its own process.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import Hooks, SchedulerProcess, install, wait_for

MARK = "kanari" + secrets.token_hex(5)


def canary(place: str) -> str:
    return f"{MARK}{place}"


def secret_env(hooks: Hooks) -> dict[str, str]:
    return {
        "HC_URL": f"{hooks.base}/ping/{canary('hc')}",
        "HC_BROKEN_URL": f"{hooks.base}/broken/{canary('hcbroken')}",
        "HOOK_URL": hooks.json_url(f"/hook/{canary('hook')}"),
        "BROKEN_HOOK_URL": hooks.json_url(f"/broken/{canary('brokenhook')}"),
        "SLACK_TOKENS": f"{canary('slacka')}/{canary('slackb')}/{canary('slackc')}",
    }


PIPELINE = """\
schedule: nightly at 02:30 UTC
grace: 1 min
environments: {primary: dev}
selection: [shop.*]
deadman: ["${HC_URL}", "${HC_BROKEN_URL}"]
notify:
  - {url: "${HOOK_URL}", on: [success, failure]}
  - {url: "${BROKEN_HOOK_URL}", on: [success, failure]}
  - {url: "slack://${SLACK_TOKENS}", on: [success, failure]}
"""


@pytest.mark.parametrize("flags", [[], ["-v"], ["--debug"], ["--format", "json"]], ids=["plain", "v", "debug", "json"])
def test_pipeline_run_prints_no_secret_of_its_urls(
    pipeline_project: Callable[..., Path], hooks: Hooks, cli: Callable[..., Any], flags: list[str]
) -> None:
    root = pipeline_project({"nightly": PIPELINE})
    for path in (
        f"/broken/{canary('hcbroken')}/start",
        f"/broken/{canary('hcbroken')}",
        f"/broken/{canary('brokenhook')}",
    ):
        hooks.status[path] = 500
    env = secret_env(hooks)
    debug, rest = (["--debug"], []) if flags == ["--debug"] else ([], flags)
    done = cli(*debug, "pipeline", "run", "nightly", *rest, cwd=root, env=env)
    assert done.code == 0, done.stdout + done.stderr
    assert hooks.paths(f"/ping/{canary('hc')}") == [f"/ping/{canary('hc')}/start", f"/ping/{canary('hc')}"]
    assert len(hooks.received(f"/broken/{canary('hcbroken')}")) >= 2  # the endpoint answering 500 was tried
    assert len(hooks.received(f"/hook/{canary('hook')}")) == 1
    assert "dead-man ping" in done.stderr  # the failure is reported, without its URL
    assert MARK not in done.stdout + done.stderr
    shown = cli("runs", "show", "last", "--format", "json", cwd=root, env=env)
    assert shown.code == 0 and MARK not in shown.stdout
    assert all(MARK not in r.text for r in hooks.received())  # bodies never quote a URL


@pytest.mark.slow
def test_the_scheduler_log_has_no_secret_of_the_urls_it_alerts(
    pipeline_project: Callable[..., Path], hooks: Hooks, schedulers: Callable[..., SchedulerProcess]
) -> None:
    root = pipeline_project({"nightly": PIPELINE})
    hooks.status[f"/broken/{canary('hcbroken')}/fail"] = 500
    hooks.status[f"/broken/{canary('brokenhook')}"] = 500
    install(root, "nightly", "2026-06-13T12:00:00+00:00")
    env = secret_env(hooks)
    # both slots since the install are more than a minute late: missed, alerted once by the scheduler itself
    scheduler = schedulers(root, clock=datetime.fromisoformat("2026-06-15T02:45:00+00:00"), env=env)
    hooks.wait(f"/ping/{canary('hc')}/fail", count=1)
    wait_for(lambda: hooks.received(f"/broken/{canary('brokenhook')}"), what="the failing webhook")
    assert scheduler.stop() == 0
    log = scheduler.output()
    assert "were missed" in log and "INFO" in log
    assert MARK not in log, log
