"""The web dashboard (``conveyor ui``): runs and their timelines, lineage, relations, extracts
and pipelines in a browser.

A Starlette app over the tracking store, read through :mod:`conveyor.api` like ``conveyor
runs``. Pages are rendered on the server (Jinja2, every value escaped); a little JavaScript
from ``static/`` (never from a CDN) keeps a running run's page up to date, draws the lineage
graph and sends the pipelines' actions. See docs/ui.md.

Modules: :mod:`.app` (routes and pages), :mod:`.views` (what a page shows, from the store's
rows), :mod:`.security` (the token guard of actions, host and origin checks, headers),
:mod:`.lineage` (the lineage graph's neighbourhood and layout), :mod:`.trigger` (a pipeline
run started from the page), :mod:`.server` (binding and serving).
"""

from __future__ import annotations

from conveyor.web.app import create_app

__all__ = ["create_app"]
