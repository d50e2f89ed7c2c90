"""Redshift from a lake on S3: the manifest of an extract names its objects in the bucket.

``redshift_manifest(manifest)`` without a prefix points Redshift's ``COPY ... MANIFEST`` at the
extract's own parts. Checked against the bucket with an independent client (boto3): every
URL names an object that exists, with ``content_length`` exactly its size, and nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
from sqlglot import exp, parse_one
from testkit.cli import CliResult

from conveyor.errors import UserError
from conveyor.lake.lake import Lake
from conveyor.project import Project
from conveyor.warehouse.redshift.copy import copy_from_manifest_sql, redshift_manifest

ROLE = "arn:aws:iam::123456789012:role/conveyor-load"


def test_the_manifest_names_the_extracts_objects_with_their_exact_sizes(
    project_dir: Path, s3_lake: str, s3_bucket: str, cli: Callable[..., CliResult]
) -> None:
    root = project_dir  # its lake: s3_lake/project0
    result = cli("extract", cwd=root)
    assert result.code == 0, result.output
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    lake = Lake(Project.load(root).lake_location)
    for relation in ("shop.customers", "shop.orders", "shop.products"):
        manifest = lake.latest("shop", relation)
        assert manifest is not None
        document = redshift_manifest(manifest)
        prefix = f"lake/project0/data/shop/{relation}/{manifest.extract_id}"
        folder = f"s3://{s3_bucket}/{prefix}"
        assert manifest.location == folder and folder.startswith(s3_lake)
        listed = client.list_objects_v2(Bucket=s3_bucket, Prefix=f"{prefix}/")
        sizes = {f"s3://{s3_bucket}/{o['Key']}": o["Size"] for o in listed["Contents"]}
        assert sizes.pop(f"{folder}/manifest.json") > 0
        assert {e["url"]: e["meta"]["content_length"] for e in document["entries"]} == sizes
        assert all(e["mandatory"] for e in document["entries"])
        for entry in document["entries"]:
            url = urlparse(entry["url"])
            head = client.head_object(Bucket=url.netloc, Key=url.path.lstrip("/"))
            assert head["ContentLength"] == entry["meta"]["content_length"]

        # the document uploaded beside the lake, and the COPY that reads it
        key = f"redshift/{relation}/{manifest.extract_id}.manifest"
        client.put_object(Bucket=s3_bucket, Key=key, Body=json.dumps(document).encode())
        sql = copy_from_manifest_sql(f"shop$staging.{relation.split('.')[1]}", f"s3://{s3_bucket}/{key}", ROLE)
        tree = parse_one(sql, read="redshift")
        assert isinstance(tree, exp.Copy)
        named = tree.args["files"][0].this
        uploaded = json.loads(client.get_object(Bucket=s3_bucket, Key=named.split("/", 3)[3])["Body"].read())
        assert uploaded == document


def test_a_local_extract_needs_the_folder_it_was_uploaded_to(
    new_project: Callable[..., Path], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    root = new_project(tmp_path / "local")  # its lake is a folder
    assert cli("extract", cwd=root).code == 0
    manifest = Lake(Project.load(root).lake_location).latest("shop", "shop.orders")
    assert manifest is not None
    with pytest.raises(UserError, match="is not on S3: name the S3 folder it was uploaded to"):
        redshift_manifest(manifest)
    document = redshift_manifest(manifest, "s3://elsewhere/orders/")
    assert [e["url"] for e in document["entries"]] == [f"s3://elsewhere/orders/{p.path}" for p in manifest.files]
