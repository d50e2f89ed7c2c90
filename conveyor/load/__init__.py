"""Loading and building the warehouse: ``build`` (a load into staging, published at once), ``update``
and ``upgrade`` (in place), ``unload`` (back into the lake) and ``resume``."""

LOCK_TIMEOUT_S = 600.0
"""How long an update or upgrade waits for a load (or another update) of the same warehouse."""
