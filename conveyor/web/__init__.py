"""The web dashboard (``conveyor ui``): the project's runs and their timelines in a browser.

A Starlette app over the tracking store, read through :mod:`conveyor.api` like ``conveyor
runs``. Pages are rendered on the server (Jinja2, every value escaped); a little JavaScript
from ``static/`` (never from a CDN) keeps a running run's page up to date. See docs/ui.md.

Modules: :mod:`.app` (routes and pages), :mod:`.views` (what a page shows, from the store's
rows), :mod:`.security` (the token guard of actions, host and origin checks, headers),
:mod:`.server` (binding and serving).
"""

from __future__ import annotations

from conveyor.web.app import create_app

__all__ = ["create_app"]
