"""Fixtures of the dashboard's tests: the real ``conveyor ui`` server over a filled tracking store
(tests/web/dashboard.py), and Debian's Chromium driven headless by Playwright.

Browser tests skip when /usr/bin/chromium is missing on a developer's machine (``make test``
installs it through scripts/system-packages.sh); under CI (``CI`` set) a missing Chromium fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit.cli import CliResult

from tests.web.dashboard import Server, start_server, stop

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, new_project: Callable[..., Path], cli: Callable[..., CliResult]
) -> Iterator[Server]:
    """The dashboard of a project with real and generated runs, actions on (token ``TOKEN``)."""
    running = start_server(tmp_path_factory.mktemp("ui"), new_project, cli)
    yield running
    stop(running.process)


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless (root needs --no-sandbox; a container's small /dev/shm, the other
    flag); never a browser Playwright downloads."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
    )


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The browser, once per test worker."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `bash scripts/system-packages.sh` installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def refusal(text: str) -> bool:
    """The console line of an HTTP refusal a test asked for (401, 403), which is no page error."""
    return text.startswith("Failed to load resource: the server responded with a status of 40")


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser page (1280 px wide); console errors and page errors (a CSP refusal, say) fail the test."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" and not refusal(msg.text) else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.set_default_timeout(15_000)
    yield page
    context.close()
    assert not problems, f"the browser reported errors: {problems}"
