"""Loading and unloading through S3: the manifest Redshift's ``COPY ... MANIFEST`` reads, and the
``COPY`` and ``UNLOAD`` statements (SQL generation only; see docs/warehouses.md).
"""

from __future__ import annotations

import re
from typing import Any

from conveyor.errors import UserError
from conveyor.lake.manifest import Manifest
from conveyor.warehouse.base import literal, qualified

_IAM_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def redshift_manifest(manifest: Manifest, s3_prefix: str | None = None) -> dict[str, Any]:
    """The Redshift manifest of an extract uploaded under ``s3_prefix`` (its folder, as is).

    An extract in an object-store lake is already on S3: ``s3_prefix`` defaults to its
    folder there (``s3://bucket/prefix/data/<source>/<relation>/<extract-id>``).
    Parquet loads need ``meta.content_length``, the exact size of every file.
    """
    if s3_prefix is None:
        if manifest.store is None or not manifest.store.location.startswith("s3://"):
            raise UserError(
                f"the extract {manifest.extract_id} is not on S3: name the S3 folder it was uploaded to.",
                hint='Put the lake on S3 (lake.path: "s3://bucket/prefix") to load Redshift from it directly.',
            )
        s3_prefix = manifest.location
    prefix = _s3(s3_prefix, "s3_prefix").rstrip("/")
    return {
        "entries": [
            {"url": f"{prefix}/{part.path}", "mandatory": True, "meta": {"content_length": part.bytes}}
            for part in manifest.files
        ]
    }


def copy_from_manifest_sql(
    table: str, manifest_url: str, iam_role: str, *, region: str | None = None, serialize_to_json: bool = False
) -> str:
    """COPY "schema"."table" FROM a Parquet manifest.

    Parquet columns load by position, so the table's columns must be in the design's order
    (as :func:`redshift_ddl` creates them). ``serialize_to_json`` loads nested Parquet
    columns (lists) into SUPER columns. ``STATUPDATE TRUE`` has the COPY analyse the table
    whether or not it was empty (Redshift's default analyses only an empty one), so the
    relations built from it are planned with statistics, as on PostgreSQL; Redshift
    analyses a ``CREATE TABLE ... AS`` by itself.
    """
    sql = (
        f"COPY {qualified(table)} FROM {literal(_s3(manifest_url, 'manifest_url'))} "
        f"IAM_ROLE {literal(_role(iam_role))} FORMAT AS PARQUET STATUPDATE TRUE"
    )
    if serialize_to_json:
        sql += " SERIALIZETOJSON"
    sql += " MANIFEST"
    if region:
        sql += f" REGION {literal(region)}"
    return sql


def unload_sql(select: str, s3_prefix: str, iam_role: str, *, max_file_size_mb: int | None = None) -> str:
    """UNLOAD a query's result to Parquet files under ``s3_prefix``, with a manifest."""
    query = select.strip().rstrip(";")
    sql = (
        f"UNLOAD ({literal(query)}) TO {literal(_s3(s3_prefix, 's3_prefix'))} "
        f"IAM_ROLE {literal(_role(iam_role))} FORMAT AS PARQUET MANIFEST"
    )
    if max_file_size_mb is not None:
        if not 5 <= max_file_size_mb <= 6_200:
            raise UserError(f"max_file_size_mb must be between 5 and 6200 (Redshift's limits), not {max_file_size_mb}.")
        sql += f" MAXFILESIZE {max_file_size_mb} MB"
    return sql


def _s3(url: str, what: str) -> str:
    if not url.startswith("s3://") or len(url) <= len("s3://") or "'" in url:
        raise UserError(f'{what} must be an s3://bucket/... URL, not "{url}".')
    return url


def _role(iam_role: str) -> str:
    roles = iam_role.split(",")
    if not all(_IAM_ROLE.match(role) for role in roles):
        raise UserError(
            f'"{iam_role}" is not an IAM role ARN (arn:aws:iam::<account>:role/<name>, comma-separated to chain).'
        )
    return iam_role
