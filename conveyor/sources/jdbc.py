"""Reading PostgreSQL and MySQL/MariaDB through JDBC exactly (the ``spark`` job type's wire forms).

Spark reads some types in its own way (no unsigned, uuid or json types; decimals it cannot
hold are rounded; CHAR padded). Each reader here names the JDBC URL and driver of its
engine, selects every column in a form Spark reads exactly (its "wire" form), and converts
the staged batches back through the source's own exact Arrow conversion.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.config.secrets import mask_dsn
from conveyor.design.types import SqlType
from conveyor.errors import ExtractError
from conveyor.sources.base import ReadRequest, Source
from conveyor.sources.verdict import ColumnRef

log = logging.getLogger("conveyor.sources")

#: the URL schemes of a MySQL or MariaDB DSN
MYSQL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql")
#: the subquery column a partitioned read splits on (the raw key, whatever the key's wire form)
SPLIT_ALIAS = "__conveyor_split"
_PG_PARAMS = {
    "sslmode": "sslmode",
    "sslrootcert": "sslrootcert",
    "sslcert": "sslcert",
    "sslkey": "sslkey",
    "connect_timeout": "connectTimeout",
    "application_name": "ApplicationName",
}


# --------------------------------------------------------------------------- wire forms


@dataclass
class WireColumn:
    """How one design column travels through Spark: the SELECT item(s) and the way back."""

    name: str
    target: SqlType
    selects: list[str]
    """SELECT items of the subquery, each ``<expression> AS <alias>``."""
    outputs: list[str]
    """The aliases, i.e. the Parquet columns Spark writes for it."""
    restore: Callable[[list[pa.Array]], pa.Array] | None = None
    """Turns the Spark columns back into the wire array the source's conversion expects."""


def _narrow_float(arr: pa.Array, ref: ColumnRef) -> pa.Array:
    """float64 -> float32 when every value survives (Spark reads MySQL FLOAT as double)."""
    narrowed = arr.cast(pa.float32(), safe=False)
    same = pc.or_kleene(pc.equal(narrowed.cast(pa.float64()), arr), pc.is_nan(arr))
    if not pc.all(pc.fill_null(same, True)).as_py():
        bad = pc.filter(arr, pc.invert(pc.fill_null(same, True)))[0].as_py()
        raise ExtractError(f"{ref} holds {bad!r}, which is not a 32-bit float value (design type real).")
    return narrowed


def normalize(arr: pa.Array, target: SqlType, ref: ColumnRef) -> pa.Array:
    """Undo the type differences Spark forces where the value itself is unchanged.

    * Spark reads every timestamp as an instant in its (UTC) session zone; where the design
      wants a naive ``timestamp`` the UTC wall clock is the stored value;
    * Spark reads MySQL ``FLOAT`` as a double: narrowed back when exact, else it raises;
    * list fields are named ``element`` by Spark and ``item`` by Arrow (rebuilt later).
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if target.is_array and (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        values = normalize(arr.flatten(), target.element, ref)
        offsets = arr.offsets
        start = offsets[0].as_py()
        if start:
            offsets = pc.subtract(offsets, start)
        return pa.ListArray.from_arrays(offsets, values, mask=arr.is_null())
    want = target.arrow
    if pa.types.is_timestamp(arr.type) and pa.types.is_timestamp(want):
        if arr.type.tz is not None and want.tz is None:
            return arr.cast(pa.timestamp(arr.type.unit))
        if arr.type.tz is None and want.tz is not None:
            raise ExtractError(f"{ref}: Spark read a zoned timestamp as a local one; it cannot be converted.")
        return arr
    if target.name == "real" and pa.types.is_float64(arr.type):
        return _narrow_float(arr, ref)
    return arr


def _time_from_micros(arr: pa.Array, ref: ColumnRef) -> pa.Array:
    from conveyor.sources.mysql_types import time_from_micros as check

    return check(arr, ref)


def _days_to_date(raw: list[pa.Array]) -> pa.Array:
    return raw[0].cast(pa.int32()).cast(pa.date32())


def _micros_to_timestamp(arrow: pa.DataType) -> Callable[[list[pa.Array]], pa.Array]:
    def restore(raw: list[pa.Array]) -> pa.Array:
        return raw[0].cast(pa.int64()).cast(arrow)

    return restore


class JdbcReader:
    """What differs per upstream engine: the JDBC URL, the wire forms and the conversion back."""

    ENGINE = ""
    DRIVER: ClassVar[str] = ""
    """The JDBC driver class."""
    DEFAULT_JAR: ClassVar[str] = ""
    """Where Debian's package of the driver puts its jar."""
    JAR_PACKAGE: ClassVar[str] = ""
    """The Debian package that installs the driver."""

    def __init__(self, source: Source, request: ReadRequest):
        self.source = source
        self.request = request
        self.plans: list[Any] = source._plan(request)  # type: ignore[attr-defined]
        self.columns = self.wire_columns()

    # -- JDBC

    @classmethod
    def driver(cls, jars: list[str]) -> str:
        """The driver class to load from ``jars``."""
        return cls.DRIVER

    @staticmethod
    def jdbc_url(dsn: str) -> str:
        """The JDBC URL of a DSN, without its user and password (they travel as properties)."""
        raise NotImplementedError

    def session_init(self, snapshot: str | None) -> str | None:
        return None

    def jdbc_options(self) -> dict[str, str]:
        return {}

    # -- SQL

    def wire_columns(self) -> list[WireColumn]:
        raise NotImplementedError

    def select_sql(self, split_key: str | None) -> str:
        """The subquery Spark reads: wire forms, the split key's raw value, the filter inlined."""
        request = self.request
        items = [item for column in self.columns for item in column.selects]
        if split_key is not None:
            items.append(f"{self.source.quote(split_key)} AS {self.source.quote(SPLIT_ALIAS)}")
        table = f"{self.source.quote(request.schema)}.{self.source.quote(request.table)}"
        text = f"SELECT {', '.join(items) or 'NULL'} FROM {table}"
        if request.where:
            text += f" WHERE {self.source.inline(request.where, request.params)}"
        return text

    # -- back to Arrow

    def convert(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        """One staged Spark batch as a batch of the design's exact schema."""
        arrays: list[pa.Array] = []
        names: list[str] = []
        for column, plan in zip(self.columns, self.plans, strict=True):
            raw = [batch.column(batch.schema.get_field_index(out)) for out in column.outputs]
            arr = column.restore(raw) if column.restore else raw[0]
            arrays.append(normalize(arr, column.target, plan.ref))
            names.append(column.name)
        arrays, names = self.extra_columns(batch, arrays, names)
        wire = pa.RecordBatch.from_arrays(arrays, names=names)
        converted: pa.RecordBatch = self.source._convert(wire, self.plans, schema)  # type: ignore[attr-defined]
        return converted

    def extra_columns(
        self, batch: pa.RecordBatch, arrays: list[pa.Array], names: list[str]
    ) -> tuple[list[pa.Array], list[str]]:
        return arrays, names

    def finish(self) -> None:
        """Report what the conversion noticed (after every file is converted)."""


class PostgresJdbc(JdbcReader):
    """PostgreSQL through pgjdbc: numbers, text, dates and timestamps read natively."""

    ENGINE = "postgres"
    DRIVER = "org.postgresql.Driver"
    DEFAULT_JAR = "/usr/share/java/postgresql.jar"
    JAR_PACKAGE = "libpostgresql-jdbc-java"

    @staticmethod
    def jdbc_url(dsn: str) -> str:
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ExtractError(
                f"the spark job type needs a postgresql:// URL DSN to build the JDBC URL, not {mask_dsn(dsn)}.",
                hint="Write the DSN as postgresql://user:${PASSWORD}@host:5432/database.",
            )
        host = parts.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host
        netloc = f"{host}:{parts.port or 5432}"
        params = {_PG_PARAMS[k]: v for k, v in parse_qsl(parts.query) if k in _PG_PARAMS}
        query = f"?{urlencode(params)}" if params else ""
        return f"jdbc:postgresql://{netloc}/{parts.path.lstrip('/')}{query}"

    def session_init(self, snapshot: str | None) -> str | None:
        if snapshot is None:
            return None
        if not re.fullmatch(r"[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)?", snapshot):
            raise ExtractError(f'"{snapshot}" is not a PostgreSQL snapshot id.')
        # Spark's PostgreSQL dialect turns autocommit off (fetchsize > 0) before this runs,
        # so the driver has opened the transaction these two statements configure
        return f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"

    def wire_columns(self) -> list[WireColumn]:
        from conveyor.sources.postgres import design_type

        columns = []
        for plan in self.plans:
            target: SqlType = plan.target
            quoted = self.source.quote(plan.name)
            col = plan.column
            select = plan.select
            restore: Callable[[list[pa.Array]], pa.Array] | None = None
            if target.is_array and target.name == "time":
                raise ExtractError(
                    f"{plan.ref}: the spark job type cannot read {target} (Spark has no exact form for it).",
                    hint="Use job_type arrow for this table, or declare the column `type: text`.",
                )
            if target.is_array and target.name in ("decimal", "uuid", "json"):
                # Spark bounds array decimals to its own default scale: read the exact text
                select = f"{quoted}::text[] AS {quoted}"
            elif target.name == "decimal" and not target.is_array:
                native = design_type(col)
                exact = (
                    col.typname == "numeric"
                    and not col.is_array
                    and col.typmod >= 4
                    and native == target
                    and (target.precision or 0) <= 38
                )
                if not exact:
                    # Spark would round to decimal(38,18) or cap the precision at 38: read the text
                    select = f"{quoted}::text AS {quoted}"
            elif target.name == "date" and not target.is_array and col.scalar_name == "date" and not col.is_array:
                # java.sql.Date is a Julian/Gregorian hybrid (1582-10-10 becomes 1582-10-20): read day numbers
                select = f"({quoted} - DATE '1970-01-01') AS {quoted}"
                restore = _days_to_date
            elif (
                target.name in ("timestamp", "timestamptz")
                and not target.is_array
                and col.scalar_name == target.name
                and not col.is_array
            ):
                # likewise java.sql.Timestamp, and it shifts naive values by the JVM's zone: read microseconds
                select = f"(EXTRACT(EPOCH FROM {quoted}) * 1000000)::bigint AS {quoted}"
                restore = _micros_to_timestamp(target.arrow)
            elif target.name == "time" and col.scalar_name == "time":
                select = f"(EXTRACT(EPOCH FROM {quoted}) * 1000000)::bigint AS {quoted}"
                ref = plan.ref

                def to_time(raw: list[pa.Array], ref: ColumnRef = ref) -> pa.Array:
                    return _time_from_micros(raw[0], ref)

                restore = to_time
            columns.append(WireColumn(plan.name, target, [select], [plan.name], restore))
            if plan.ndims:
                columns[-1].selects.append(f"{plan.ndims} AS {self.source.quote('__ndims_' + plan.name)}")
        return columns

    def extra_columns(
        self, batch: pa.RecordBatch, arrays: list[pa.Array], names: list[str]
    ) -> tuple[list[pa.Array], list[str]]:
        for plan in self.plans:
            if plan.ndims:
                name = "__ndims_" + plan.name
                arrays.append(batch.column(batch.schema.get_field_index(name)))
                names.append(name)
        return arrays, names


class MySQLJdbc(JdbcReader):
    """MySQL and MariaDB through MariaDB Connector/J (or MySQL Connector/J)."""

    ENGINE = "mysql"
    DRIVER = "org.mariadb.jdbc.Driver"
    DEFAULT_JAR = "/usr/share/java/mariadb-java-client.jar"
    JAR_PACKAGE = "libmariadb-java"
    MYSQL_CONNECTOR_J = "com.mysql.cj.jdbc.Driver"

    @classmethod
    def driver(cls, jars: list[str]) -> str:
        """MariaDB Connector/J, or MySQL Connector/J when that is the jar given."""
        if any("mysql-connector" in Path(j).name for j in jars):
            return cls.MYSQL_CONNECTOR_J
        return cls.DRIVER

    @staticmethod
    def jdbc_url(dsn: str) -> str:
        parts = urlsplit(dsn)
        if parts.scheme not in MYSQL_SCHEMES:
            raise ExtractError(f"the spark job type needs a mysql:// URL DSN, not {mask_dsn(dsn)}.")
        host = parts.hostname or "127.0.0.1"
        # jdbc:mysql: makes Spark use its MySQL dialect (backquoted identifiers); MariaDB
        # Connector/J 2.x accepts the scheme. Server-side prepared statements use the
        # binary protocol, so doubles arrive bit for bit.
        params = {"tinyInt1isBit": "false", "yearIsDateType": "false", "useServerPrepStmts": "true"}
        return f"jdbc:mysql://{host}:{parts.port or 3306}/{parts.path.lstrip('/')}?{urlencode(params)}"

    def session_init(self, snapshot: str | None) -> str | None:
        return "SET time_zone = '+00:00'"

    def wire_columns(self) -> list[WireColumn]:
        natives = {c.name: c for c in self.source.my_columns(self.request.schema, self.request.table)}  # type: ignore[attr-defined]
        columns = []
        for plan in self.plans:
            target: SqlType = plan.target
            quoted = self.source.quote(plan.name)
            native = natives[plan.name]
            data_type = native.data_type.lower()
            select = plan.select
            if plan.wire == "plain" and target.name == "boolean":
                # Spark turns tinyint(1) into a boolean itself, making 2 true: read the number
                select = f"CAST({quoted} AS SIGNED) AS {quoted}"
            elif plan.wire == "plain" and data_type == "year":
                select = f"CAST({quoted} AS SIGNED) AS {quoted}"
            elif plan.wire == "plain" and target.name == "text" and data_type in ("char", "enum", "set"):
                # the driver reports these as CHAR(n) and Spark pads CHAR(n) values to n characters;
                # MySQL returns them without trailing spaces, and a VARCHAR keeps them so
                select = f"CAST({quoted} AS CHAR) AS {quoted}"
            elif plan.wire == "plain" and data_type == "bit" and target.name == "bytes":
                # Spark reads BIT(n) as a number or bit text: the big-endian bytes, as arrow reads them
                select = f"CAST({quoted} AS BINARY) AS {quoted}"
            elif plan.wire == "plain" and data_type == "float" and target.name == "real":
                select = f"CAST({quoted} AS DOUBLE) AS {quoted}"
            columns.append(WireColumn(plan.name, target, [select], [plan.name]))
        return columns

    def finish(self) -> None:
        for plan in self.plans:
            if plan.zero_dates[0]:
                self.source.notice_zero_dates(plan.ref, plan.zero_dates[0])  # type: ignore[attr-defined]


#: source type -> its JDBC reader
JDBC_READERS: dict[str, type[JdbcReader]] = {"postgres": PostgresJdbc, "mysql": MySQLJdbc}
