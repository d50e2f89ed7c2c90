"""Amazon Redshift: the environment object. It overrides every public method of the PostgreSQL
engine it derives from: DDL and types are Redshift's, and what would run against a cluster
is refused up front (see docs/warehouses.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pyarrow as pa

from conveyor.config.settings import EnvironmentConfig
from conveyor.design.models import TableDesign
from conveyor.design.types import SqlType
from conveyor.errors import ConfigError, UserError
from conveyor.warehouse import ddl
from conveyor.warehouse.base import QueryResult
from conveyor.warehouse.postgres.build import PostgresBuild
from conveyor.warehouse.postgres.transaction import PostgresTransaction
from conveyor.warehouse.postgres.warehouse import PostgresWarehouse
from conveyor.warehouse.redshift.ddl import MAX_DECIMAL_DIGITS, TYPE_MAPPING, redshift_ctas, redshift_ddl, redshift_type

_NO_S3 = "Redshift loads with COPY from S3, and this project's lake is a local folder"
_NOT_PG = "its in-place steps use PostgreSQL features Redshift lacks (advisory locks, pg_depend)"
_WHY: dict[str, str] = {
    "load": _NO_S3,
    "update": f"{_NO_S3}, and {_NOT_PG}",
    "upgrade": f"{_NO_S3}, and {_NOT_PG}",
    "unload": "Redshift's UNLOAD writes to S3 only, and this project's lake is a local folder",
}


class RedshiftWarehouse(PostgresWarehouse):
    """Amazon Redshift: DDL and SQL generation; operations on a cluster are refused (see the module docstring).

    Every public method of :class:`PostgresWarehouse` is overridden: none of PostgreSQL's
    code runs against Redshift by inheritance.
    """

    ENGINE = "redshift"
    DIALECT = "redshift"
    PUBLISH = "schema_swap"
    OPERATIONS = frozenset[str]()
    TYPE_MAPPING = TYPE_MAPPING
    """Design type -> Redshift type, for the types without parameters."""
    MAX_DECIMAL_PRECISION = MAX_DECIMAL_DIGITS

    @classmethod
    def type_problem(cls, sql_type: SqlType) -> str | None:
        """Wide decimals (as for every engine), and any type :func:`redshift_type` cannot spell."""
        wide = super().type_problem(sql_type)
        if wide is not None:
            return wide
        try:
            redshift_type(sql_type)
        except ConfigError:
            return "Redshift has no such type"
        return None

    def __init__(self, name: str, dsn: str, *, root: Path | None = None, config: EnvironmentConfig | None = None):
        super().__init__(name, dsn, root=root, config=config)

    def describe(self) -> str:
        return "Redshift" + super().describe().removeprefix("PostgreSQL")

    def unsupported(self, operation: str) -> tuple[str, str]:
        why = _WHY.get(operation, "Conveyor generates Redshift SQL but runs none of it against a cluster yet")
        return (
            f'{operation} is not supported on the Redshift environment "{self.name}" yet: {why}. Nothing was changed.',
            f'"conveyor show ddl --env {self.name}" prints the Redshift DDL; docs/warehouses.md (Redshift) lists '
            "what is supported.",
        )

    @classmethod
    def render_type(cls, sql_type: SqlType, *, column: str = "", design: str = "") -> str:
        return redshift_type(sql_type, column=column, design=design)

    def table_ddl(self, design: TableDesign) -> list[str]:
        """CREATE TABLE with Redshift types, informational keys and the design's DIST/SORT/ENCODE attributes."""
        return [redshift_ddl(design, keys=True), *ddl.comments(design)]

    def ctas_ddl(self, design: TableDesign, select: str) -> list[str]:
        return [redshift_ctas(design, select), *ddl.comments(design)]

    def create_table_sql(self, design: TableDesign, *, name: str | None = None) -> str:
        """The CREATE TABLE this warehouse would run for ``design``."""
        return redshift_ddl(design, name=name)

    # what would run against the cluster: refused up front (PostgreSQL's versions must not run here)

    def _refuse(self, operation: str) -> NoReturn:
        message, hint = self.unsupported(operation)
        raise UserError(message, hint=hint)

    def connect(self) -> Any:
        self._refuse("connecting to the cluster")

    def begin(
        self, schemas: Sequence[str], *, run_id: str, keep_schemas: bool = True, resume_from: str | None = None
    ) -> PostgresBuild:
        self._refuse("load")

    def transaction(
        self,
        *,
        run_id: str,
        atomic: bool = True,
        lock_timeout_s: float = 0.0,
        waiting: Callable[[str], None] | None = None,
    ) -> PostgresTransaction:
        self._refuse("update" if atomic else "upgrade")

    @contextmanager
    def read_relation(self, name: str, batch_rows: int = 65_536) -> Iterator[pa.RecordBatchReader]:
        self._refuse("unload")
        yield from ()  # a generator like PostgreSQL's; never reached

    def relations(self) -> dict[str, str]:
        self._refuse("listing published relations")

    def query(self, sql: str, limit: int) -> QueryResult:
        self._refuse("query")

    def kept_build(self, run_id: str) -> bool | None:
        self._refuse("load --resume")
