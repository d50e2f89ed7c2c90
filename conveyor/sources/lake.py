"""Another lake as a static source: tables are the committed extracts (or unloads) in it.

``dsn`` is the folder that holds the ``<schema>.<table>`` folders, for example
``../warehouse_project/lake/data/unload_production`` (or one source's folder of another
project's extracts, whose folders are named by relation), or the same folder of a lake on
an S3-compatible store, ``s3://bucket/prefix/data/unload_production`` (read with the
standard AWS environment, as the lake itself: :mod:`conveyor.lake.store`). Folder names are encoded as the
lake encodes them (:func:`~conveyor.lake.lake.encode_name`). A table's rows are those of its
newest committed manifest; the folder is read through manifests only, like every lake
reader. Values are cast to the design's types with Arrow's safe casts, which raise instead
of losing digits.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from conveyor.design.types import from_arrow
from conveyor.errors import ExtractError
from conveyor.lake.lake import decode_name, encode_name, newest_at
from conveyor.lake.manifest import Manifest
from conveyor.lake.store import LocalStore, open_store
from conveyor.sources.base import ColumnInfo, ReadRequest, Source, TableInfo


class LakeSource(Source):
    """Committed extracts in a lake folder (local or ``s3://``), read through their manifests."""

    ENGINE = "lake"
    DIALECT = "duckdb"
    DEFAULT_SCHEMA = None
    SUPPORTS_SNAPSHOT = False
    SUPPORTS_CTID = False
    SUPPORTS_SPLIT = False

    def __init__(self, name: str, dsn: str):
        super().__init__(name, dsn)
        #: the folder's store: its root is the folder itself, so a table's key is its folder name
        self.store = open_store(dsn.removeprefix("lake://"))
        #: where the folder is, for messages (never a secret: credentials come from the environment)
        self.folder = self.store.location

    def _manifest(self, schema: str | None, table: str) -> Manifest:
        name = f"{schema}.{table}" if schema else table
        manifest = newest_at(self.store, encode_name(name))
        if manifest is None:
            known = [f"{s}.{t}" for s, t in self.list_tables()]
            raise ExtractError(
                f'the lake source "{self.name}" has no committed extract of "{name}" in {self.folder}.',
                hint=f"Known tables: {', '.join(known) or 'none'}.",
            )
        return manifest

    def list_tables(self) -> list[tuple[str, str]]:
        if isinstance(self.store, LocalStore) and not self.store.root.is_dir():
            raise ExtractError(f'the folder of lake source "{self.name}" does not exist: {self.folder}.')
        found = []
        for child in self.store.children(""):
            if newest_at(self.store, child) is not None:
                schema, _, table = decode_name(child).rpartition(".")
                found.append((schema, table))
        if not found and not isinstance(self.store, LocalStore) and not self.store.objects(""):
            raise ExtractError(
                f'the lake source "{self.name}" finds nothing at {self.folder}.',
                hint="Check the dsn (s3://bucket/prefix/data/<source>) and the AWS environment.",
            )
        return found

    def column_names(self, schema: str, table: str) -> list[str]:
        return list(self._manifest(schema, table).arrow_schema.names)

    def describe(self, schema: str, table: str) -> TableInfo:
        manifest = self._manifest(schema, table)
        columns = []
        for field in manifest.arrow_schema:
            try:
                sql_type = from_arrow(field.type)
            except ValueError:
                raise ExtractError(
                    f'{schema}.{table}.{field.name}: Arrow type {field.type} has no design type (source "{self.name}").'
                ) from None
            columns.append(ColumnInfo(field.name, sql_type, str(field.type), not field.nullable))
        return TableInfo(schema, table, tuple(columns), row_estimate=manifest.rows)

    def read(self, request: ReadRequest, *, snapshot: str | None = None) -> Iterator[pa.RecordBatch]:
        if request.where:
            raise ExtractError(
                f'the lake source "{self.name}" cannot filter rows ({request.where}).',
                hint="Remove extract.condition and extract.incremental from the design.",
            )
        manifest = self._manifest(request.schema, request.table)
        schema = request.arrow_schema
        dataset = manifest.dataset()
        missing = [n for n in schema.names if n not in dataset.schema.names]
        if missing:
            raise ExtractError(f'{request.schema}.{request.table} in lake source "{self.name}" lacks {missing}.')
        for batch in dataset.to_batches(columns=schema.names, batch_size=request.batch_rows):
            try:
                yield pa.RecordBatch.from_arrays(
                    [batch.column(i).cast(field.type, safe=True) for i, field in enumerate(schema)], schema=schema
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ExtractError(
                    f'{request.schema}.{request.table} in lake source "{self.name}" does not convert exactly: {exc}.'
                ) from None
