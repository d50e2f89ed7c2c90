"""The screenshots of docs/ui.md, taken from the real dashboard in Debian's Chromium.

    PYTHONPATH=$PWD python tests/web/screenshots.py docs/ui

The test project with the history a team would see (tests/web/dashboard.py: a run whose data
test warned, a failed run, 400 generated runs), and one load held in the middle of its build
for the page of a run in progress. Not a test: it writes the PNG files of the documentation.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402
from testkit.cli import run_cli  # noqa: E402
from testkit.history import generate_runs  # noqa: E402

from tests.conftest import PausedLoad, build_project  # noqa: E402
from tests.web.bigdag import generate  # noqa: E402
from tests.web.conftest import launch_chromium  # noqa: E402
from tests.web.dashboard import BROKEN_TOP, TOTALS_WITH_TEST, settings, start_ui, stop  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with TemporaryDirectory(prefix="ui-shots-") as folder:
        root = build_project(
            Path(folder) / "shop", settings=settings(), designs={"mart/customer_totals.yaml": TOTALS_WITH_TEST}
        )
        assert run_cli("run", "-q", cwd=root).code == 0
        assert run_cli("pipeline", "install", "nightly", cwd=root).code == 0
        generate_runs(root / ".conveyor" / "tracking.db", 400, newest=datetime.now(UTC) - timedelta(hours=2))
        assert run_cli("run", "-q", cwd=root).code == 0
        top = root / "schemas/mart/top_customers.sql"
        good = top.read_text()
        top.write_text(BROKEN_TOP)
        assert run_cli("run", "-q", cwd=root).code == 1
        top.write_text(good)
        failed, ok = (r["run_id"] for r in run_cli("runs", "-n", "2", "--format", "json", cwd=root).json())
        process, url, _ = start_ui(root, {})
        load = PausedLoad(root, "dev", "mart.top_customers")
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1180, "height": 720})
                page.goto(url + "/")
                page.screenshot(path=out / "runs.png")
                page.goto(f"{url}/runs/{failed}")
                page.screenshot(path=out / "run-failed.png", full_page=True)
                page.goto(f"{url}/runs/{ok}")
                page.locator("#tests").scroll_into_view_if_needed()
                page.screenshot(path=out / "run-tests.png", full_page=True)
                page.goto(url + "/pipelines")
                page.screenshot(path=out / "pipelines.png")
                page.goto(url + "/lineage?focus=mart.customer_totals&up=3&down=3")
                page.wait_for_selector("#graph[data-drawn]")
                page.screenshot(path=out / "lineage.png")
                page.goto(url + "/relations/mart.customer_totals")
                page.screenshot(path=out / "relation.png")
                page.goto(url + "/extracts")
                page.screenshot(path=out / "extracts.png")
                page.goto(url + "/extracts/shop.orders")
                page.screenshot(path=out / "extract-history.png")
                page.goto(url + "/?status=running")
                page.click("#runs tbody tr a")
                page.wait_for_timeout(2500)  # two polls: the running bar has grown
                page.screenshot(path=out / "run-live.png")
                browser.close()
        finally:
            load.release()
            load.finish()
            stop(process)
        big = generate(Path(folder) / "bigdag", 5000)
        process, url, _ = start_ui(Path(folder) / "bigdag", {})
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1180, "height": 720})
                page.goto(url + "/lineage?focus=s03.t02667&up=2&down=2")
                page.wait_for_selector("#graph[data-drawn]")
                page.fill("#search", "t0266")
                page.wait_for_selector("#results li.more")
                page.screenshot(path=out / "lineage-5000.png")
                browser.close()
        finally:
            stop(process)
        assert big
    for path in sorted(out.glob("*.png")):
        print(f"{path}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/ui"))
