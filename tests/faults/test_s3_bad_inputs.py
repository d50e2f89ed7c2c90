"""Bad object-store settings: one paragraph, exit code 2, nothing written, no credential anywhere.

Each case is a project whose lake is on S3 (moto on loopback) with one thing wrong: the
bucket does not exist, the keys are wrong, nothing answers at the endpoint, the prefix is
not writable, or the location itself is malformed. moto accepts any access key and secret
(it checks none unless told to), so wrong keys are played by the fault proxy
(tests/testkit/s3proxy.py) answering ``403 InvalidAccessKeyId`` as S3 does, and a prefix
that cannot be written by it answering ``403 AccessDenied`` to PUTs.

``conveyor run`` must refuse before it writes anything (the preflight puts and deletes a
small probe object under the prefix before an extract), with the ``conveyor.yaml`` line of
``lake.path``, what is wrong and what to do; ``conveyor validate`` checks the location's
form. The secret key and the key id (set to canaries) must appear in no output and not in
the tracking store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testkit.cli import run_cli
from testkit.s3 import S3Server, free_port
from testkit.s3proxy import Fault, FaultProxy

from tests.conftest import CONVEYOR_YAML

SECRET = "canary-secret-Zq81vXk2"
KEY_ID = "canary-key-id-Pw3nR7"
INLINE = "AKIAIOSFODNN7EXAMPLE:inline-secret-Hy5Tq0"


@dataclass(frozen=True)
class Case:
    name: str
    location: str  # "{bucket}" is the test's fresh bucket
    says: tuple[str, ...]  # what the paragraph must say (the problem, then what to do)
    fault: Fault | None = None  # answered by the proxy in front of moto
    refused_endpoint: bool = False
    form: bool = False  # a malformed location: `conveyor validate` finds it too


CASES = [
    Case(
        "bucket-missing",
        "s3://conveyor-no-such-bucket-4711/lake",
        ("cannot be written", "NoSuchBucket", "Create the bucket, or correct the bucket in lake.path."),
    ),
    Case(
        "wrong-keys",
        "s3://{bucket}/lake",
        ("cannot be written", "InvalidAccessKeyId", "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"),
        fault=Fault(status=403, code="InvalidAccessKeyId"),
    ),
    Case(
        "endpoint-refuses",
        "s3://{bucket}/lake",
        ("cannot be written", "no answer: the connection to the endpoint failed", "Check AWS_ENDPOINT_URL"),
        refused_endpoint=True,
    ),
    Case(
        "prefix-not-writable",
        "s3://{bucket}/lake",
        ("cannot be written", "AccessDenied", "the bucket's policy"),
        fault=Fault(status=403, code="AccessDenied", method="PUT"),
    ),
    Case("no-bucket", "s3://", ("is not a lake location of the form s3://bucket/prefix",), form=True),
    Case("dot-dot", "s3://{bucket}/../x", ('has an empty, "." or ".." segment in its prefix',), form=True),
    Case("empty-segment", "s3://{bucket}/a//b", ('has an empty, "." or ".." segment',), form=True),
    Case(
        "inline-credentials",
        f"s3://{INLINE}@{{bucket}}/lake",
        ("holds credentials", "s3://***@", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        form=True,
    ),
    Case("unknown-scheme", "gs://{bucket}/lake", ('uses the scheme "gs://"', 'or "s3://bucket/prefix"'), form=True),
    Case("bad-bucket-name", "s3://Not_A_Bucket/lake", ('"Not_A_Bucket" is not an S3 bucket name',), form=True),
    Case("query", "s3://{bucket}/lake?versionId=3", ("is not a lake location of the form",), form=True),
]


@pytest.fixture
def endpoint(s3_server: S3Server) -> Iterator[Callable[[Case], str]]:
    """``endpoint(case)``: the AWS_ENDPOINT_URL the case's commands use (moto, the proxy, or a closed port)."""
    proxies: list[FaultProxy] = []

    def choose(case: Case) -> str:
        if case.refused_endpoint:
            return f"http://127.0.0.1:{free_port()}"
        if case.fault is None:
            return s3_server.endpoint
        proxy = FaultProxy(s3_server.endpoint).__enter__()
        proxies.append(proxy)
        proxy.add(case.fault)
        return proxy.endpoint

    yield choose
    for proxy in proxies:
        proxy.__exit__()


def leaked(text: str) -> list[str]:
    return [name for name in (SECRET, KEY_ID, INLINE, INLINE.split(":")[1]) if name in text]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_object_store_setting_is_one_paragraph_exit_2_and_writes_nothing(
    case: Case,
    s3_bucket: str,
    s3_server: S3Server,
    make_project: Callable[..., Path],
    endpoint: Callable[[Case], str],
) -> None:
    location = case.location.format(bucket=s3_bucket)
    root = make_project(settings=CONVEYOR_YAML.replace("  path: lake\n", f'  path: "{location}"\n'))
    env = {"AWS_ENDPOINT_URL": endpoint(case), "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ACCESS_KEY_ID": KEY_ID}

    result = run_cli("run", cwd=root, env=env, timeout=120)
    assert result.code == 2, result.output
    text = " ".join(result.output.split())
    assert text.startswith("Error: conveyor.yaml:7: "), result.output
    assert result.output.strip().count("\n\n") == 0 and "Traceback" not in result.output, result.output
    for phrase in case.says:
        assert phrase in text, f"{phrase!r} not in: {result.output}"
    assert not leaked(result.output)

    # nothing written: no warehouse, no run, no object in the bucket
    assert not (root / "warehouse.duckdb").exists()
    assert s3_server.request("GET", f"{s3_bucket}?list-type=2") == 200
    assert _objects(s3_server, s3_bucket) == []
    tracking = root / ".conveyor" / "tracking.db"
    if tracking.exists():
        con = sqlite3.connect(tracking)
        try:
            assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
            assert not leaked("\n".join(con.iterdump()))
        finally:
            con.close()

    if case.form:
        checked = run_cli("validate", "--skip-sources", cwd=root, env=env)
        assert checked.code == 2 and "[lake-path]" in checked.output, checked.output
        assert case.says[0] in " ".join(checked.output.split()), checked.output
        assert not leaked(checked.output)


def _objects(s3_server: S3Server, bucket: str) -> list[str]:
    import re
    import urllib.request

    with urllib.request.urlopen(f"{s3_server.endpoint}/{bucket}?list-type=2", timeout=10) as answer:
        return re.findall(r"<Key>([^<]*)</Key>", answer.read().decode())


def test_moto_accepts_any_key_so_wrong_keys_are_played_by_the_proxy(
    s3_bucket: str, make_project: Callable[..., Path]
) -> None:
    """What the module's docstring says of moto, checked: a wrong secret and key id extract fine."""
    root = make_project(settings=CONVEYOR_YAML.replace("  path: lake\n", f"  path: s3://{s3_bucket}/lake\n"))
    result = run_cli("extract", "-q", cwd=root, env={"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ACCESS_KEY_ID": KEY_ID})
    assert result.code == 0, result.output
