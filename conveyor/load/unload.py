"""Unload: published warehouse relations back into the lake, as Parquet plus manifest.

An unloaded relation lands like an extract, under ``<lake>/data/<source-name>/<schema>.<table>/``,
so another project can read it with a ``type: lake`` source (see docs/extract.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.design.types import from_arrow
from conveyor.lake.lake import Lake, lake_for
from conveyor.lake.manifest import Manifest
from conveyor.project import Relation
from conveyor.runctx import RunContext
from conveyor.warehouse.base import Warehouse, qualified


def unload(ctx: RunContext, relations: list[Relation], warehouse: Warehouse, source_name: str) -> list[Manifest]:
    """Write each relation's published rows into the lake; returns the committed manifests."""
    settings = ctx.project.settings
    lake = lake_for(ctx.project.lake_location, ctx.tracking)
    ctx.reporter.phase("unload", len(relations))
    manifests = []
    for relation in relations:
        with ctx.step(relation.name, "unload") as outcome:
            manifest = _unload_one(
                lake,
                warehouse,
                relation,
                source_name,
                settings.lake.part_rows,
                settings.lake.compression,
                settings.defaults.batch_rows,
            )
            outcome.rows, outcome.bytes = manifest.rows, manifest.bytes
            outcome.detail["extract_id"] = manifest.extract_id
        lake.prune(source_name, relation.name, settings.lake.keep)
        manifests.append(manifest)
    return manifests


def _unload_one(
    lake: Lake,
    warehouse: Warehouse,
    relation: Relation,
    source_name: str,
    part_rows: int,
    compression: str,
    batch_rows: int,
) -> Manifest:
    started = datetime.now(UTC)
    with (
        warehouse.read_relation(relation.name, batch_rows) as reader,
        lake.writing(source_name, relation.name) as target,
    ):
        schema = lake_schema(reader.schema)
        writer = target.part_writer(schema, part_rows=part_rows, compression=compression)
        try:
            for batch in reader:
                writer.write(to_lake_types(batch, schema))
            parts = writer.close()
        except BaseException:
            writer.abort()
            raise
        manifest = Manifest(
            extract_id=target.extract_id,
            source=source_name,
            upstream_table=relation.name,
            relation=relation.name,
            files=parts,
            arrow_schema=schema,
            query=f"SELECT * FROM {qualified(relation.name)}  -- {warehouse.describe()}",
            started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(),
            job_type="unload",
            columns=[{"name": f.name, "type": _type_text(f.type)} for f in schema],
        )
        target.commit(manifest)
    return manifest


def lake_schema(schema: pa.Schema) -> pa.Schema:
    """The warehouse's Arrow schema in lake types: ``arrow.bool8`` (DuckDB's lossless boolean) is boolean."""
    return pa.schema([pa.field(f.name, _lake_type(f.type), f.nullable) for f in schema])


def _lake_type(dtype: pa.DataType) -> pa.DataType:
    is_bool8 = isinstance(dtype, pa.BaseExtensionType) and dtype.extension_name == "arrow.bool8"
    return pa.bool_() if is_bool8 else dtype


def to_lake_types(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Convert a batch's columns to ``schema`` (bool8 storage is int8: nonzero is true)."""
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        if column.type != field.type:
            column = pc.not_equal(column.storage, 0)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _type_text(dtype: pa.DataType) -> str | None:
    try:
        return str(from_arrow(dtype))
    except ValueError:
        return None
