"""Time to interactive of the lineage page on a project of 5,000 relations (target: 2 s or less
in headless Chromium), and the server time of its JSON.

    python3 bench/ui/lineage.py                      # 5,000 relations, 20 runs of history, 10 loads per view
    python3 bench/ui/lineage.py --relations 20000 --loads 5

Setup, untimed: tests/web/bigdag.py writes a project of ``--relations`` CTAS relations over 8
schemas (each reads two random earlier ones), and ``--history`` runs are recorded in its
SQLite tracking store, each with one ``build`` event per relation (about 8% failed), so that
every node's colour is looked up in a store of ``relations x history`` events. Then ``conveyor
ui --port 0`` starts as users start it.

Time to interactive: Debian's Chromium (headless, through Playwright) opens
``/lineage?focus=...`` in a fresh page, and the page's own clock says when the focused graph
was drawn (``window.__lineageDrawnAt``: milliseconds from the start of the navigation, which
covers the HTML, the script, the ``/api/lineage`` request and the drawing). Each view is loaded
``--loads`` times after one warm-up, the views interleaved. Server times come from the
``Server-Timing`` header of ``/api/lineage`` and ``/api/relations`` (30 requests each).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from conveyor.tracking.models import FinishedEvent  # noqa: E402
from conveyor.tracking.store import TrackingStore, default_dsn  # noqa: E402
from tests.web.bigdag import generate, relation_name  # noqa: E402
from tests.web.conftest import launch_chromium  # noqa: E402
from tests.web.dashboard import start_ui, stop  # noqa: E402

SCHEMAS = 8


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def record_history(root: Path, names: list[str], runs: int) -> int:
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=runs)
    with TrackingStore.open(default_dsn(root)) as store:
        for index in range(runs):
            run = store.start_run("run", project="bigdag", environment="development")
            at = start + timedelta(days=index)
            events = [
                FinishedEvent(
                    name, "build", "failed" if rng.random() < 0.08 else "succeeded", at, at + timedelta(seconds=1), 1
                )
                for name in names
            ]
            store.record_events(run, events)
            store.finish_run(run, "succeeded")
    return runs * len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relations", type=int, default=5000)
    parser.add_argument("--history", type=int, default=20, help="runs recorded, one build event per relation each")
    parser.add_argument("--loads", type=int, default=10, help="timed page loads per view")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-lineage-") as folder:
        root = Path(folder) / "project"
        began = time.perf_counter()
        parents = generate(root, args.relations, schemas=SCHEMAS)
        events = record_history(root, sorted(parents), args.history)
        print(f"{args.relations:,} relations, {events:,} events, set up in {time.perf_counter() - began:.1f} s")
        first, middle = relation_name(1, SCHEMAS), relation_name(args.relations // 2, SCHEMAS)
        last = relation_name(args.relations - 1, SCHEMAS)  # a late relation: few children, a long upstream
        views = {
            "an early relation, 2 up / 2 down (downstream capped at 150)": f"focus={first}&up=2&down=2",
            "a middle relation, 2 up / 2 down": f"focus={middle}&up=2&down=2",
            "a late relation, 10 up / 10 down": f"focus={last}&up=10&down=10",
            "a middle relation, 10 up / 10 down (upstream capped at 150)": f"focus={middle}&up=10&down=10",
        }
        process, url, _ = start_ui(root, {"PYTHONPATH": str(ROOT)})
        drawn: dict[str, list[float]] = {name: [] for name in views}
        nodes: dict[str, int] = {}
        server: dict[str, list[float]] = {name: [] for name in views}
        search: list[float] = []
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                for round_number in range(args.loads + 1):
                    for name, query in views.items():
                        context = browser.new_context(viewport={"width": 1280, "height": 800})
                        page = context.new_page()
                        page.goto(f"{url}/lineage?{query}")
                        page.wait_for_selector("#graph[data-drawn]", timeout=30_000)
                        if round_number:
                            drawn[name].append(float(page.evaluate("window.__lineageDrawnAt")))
                        nodes[name] = page.locator("#graph g.node").count()
                        context.close()
                browser.close()
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(30):
                    for name, query in views.items():
                        timing = client.get(f"/api/lineage?{query}").headers["server-timing"]
                        server[name].append(float(re.search(r"dur=([\d.]+)", timing).group(1)))  # type: ignore[union-attr]
                    timing = client.get("/api/relations", params={"q": "t04"}).headers["server-timing"]
                    search.append(float(re.search(r"dur=([\d.]+)", timing).group(1)))  # type: ignore[union-attr]
        finally:
            stop(process)

    print(f"\n{args.loads} loads per view; load average {os.getloadavg()}")
    print("| view | nodes drawn | time to interactive median (ms) | p95 (ms) | /api/lineage server median (ms) |")
    print("|---|---|---|---|---|")
    for name in views:
        print(
            f"| {name} | {nodes[name]} | {statistics.median(drawn[name]):.0f} | {percentile(drawn[name], 0.95):.0f} "
            f"| {statistics.median(server[name]):.1f} |"
        )
    print(f"| search `/api/relations?q=t04` | | | | {statistics.median(search):.1f} |")


if __name__ == "__main__":
    main()
