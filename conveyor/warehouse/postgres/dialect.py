"""PostgreSQL's SQL habits (see :mod:`conveyor.warehouse.dialect`): the reference dialect."""

from __future__ import annotations

from conveyor.warehouse.dialect import Dialect


class PostgresDialect(Dialect):
    """PostgreSQL: the defaults of :class:`~conveyor.warehouse.dialect.Dialect`."""

    NAME = "postgres"
