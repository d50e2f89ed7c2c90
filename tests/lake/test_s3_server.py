"""The moto S3 server the object-store lake is tested against: real HTTP, conditional writes honoured.

boto3 (a dev dependency) is used here as an independent client, configured only by the
AWS environment variables the fixture sets.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from testkit.s3 import S3Server


def test_bucket_round_trip_over_http(s3_server: S3Server, s3_bucket: str) -> None:
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert s3_server.request("GET", f"{s3_bucket}/a/b.txt") == 403  # unsigned: refused, as on AWS
    with pytest.raises(ClientError, match="NoSuchBucket"):
        client.get_object(Bucket="no-such-bucket-here", Key="x")


def test_if_none_match_refuses_a_second_writer(s3_bucket: str) -> None:
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="m.json", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=s3_bucket, Key="m.json", Body=b"second", IfNoneMatch="*")
    assert client.get_object(Bucket=s3_bucket, Key="m.json")["Body"].read() == b"first"
