"""Connecting to PostgreSQL: libpq DSNs, ending a session from the client side, readable driver errors."""

from __future__ import annotations

import logging
import re
from contextlib import suppress
from typing import Any, Protocol

import psycopg
import psycopg.errors

log = logging.getLogger("conveyor.warehouse.postgres")


def libpq_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+driver://`` URLs too."""
    return re.sub(r"^postgres(?:ql)?\+[A-Za-z0-9_]+://", "postgresql://", dsn)


def end_with_client(con: psycopg.Connection[Any]) -> None:
    """Have the server end this session's statement soon after the client is gone.

    A killed load (SIGKILL) leaves its statements running on the server, holding locks on the
    staging objects until they finish, which could be hours; ``load --resume`` would wait
    for them. Servers from PostgreSQL 14 check the client's socket every 2 s while a statement
    runs and cancel it once the client has gone; older ones (and Redshift) do not.
    """
    if con.info.server_version >= 140000:
        with suppress(psycopg.Error):
            con.execute("SET client_connection_check_interval = '2s'")


def error_message(exc: BaseException) -> str:
    """A PostgreSQL error in one line: message, detail, hint and where it happened."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if diag is None or not primary:
        return " ".join(str(exc).split())
    parts = [primary]
    for extra in (diag.message_detail, diag.message_hint, diag.context):
        if extra:
            parts.append(" ".join(extra.split()))
    return "; ".join(parts)


class Server(Protocol):
    """What a build or an in-place transaction needs of the warehouse that started it."""

    name: str
    keep_backup: bool
    readers: list[str]
    writers: list[str]

    def connect(self) -> psycopg.Connection[Any]: ...
