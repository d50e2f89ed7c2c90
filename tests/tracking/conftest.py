"""The store fixtures (``target``, ``store``, ``pg_database``), defined beside the store's own
tests, for every test module of the tracking store."""

from .test_store import pg_database, store, target  # noqa: F401 - fixtures
