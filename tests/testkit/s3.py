"""A real S3-compatible server on loopback: moto in server mode, as a subprocess.

The code under test reaches it only through its endpoint URL and the standard AWS
environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``), exactly as it would reach AWS; nothing patches a client. Buckets
are made and emptied with plain HTTP requests, so the fixture depends on no S3 client.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "conveyor-test-key"
SECRET_KEY = "conveyor-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running moto server: its endpoint and the environment that points a client at it."""

    endpoint: str
    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def request(self, method: str, path: str, body: bytes | None = None) -> int:
        """One plain HTTP request to the server; its status code."""
        req = urllib.request.Request(f"{self.endpoint}/{path.lstrip('/')}", data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def create_bucket(self, name: str | None = None) -> str:
        """A new, empty bucket (a unique name unless given)."""
        name = name or f"conveyor-{uuid.uuid4().hex[:12]}"
        status = self.request("PUT", name)
        if status != 200:
            raise RuntimeError(f"moto refused to create bucket {name}: HTTP {status}")
        return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def moto_server() -> Iterator[S3Server]:
    """Start ``python -m moto.server`` on a free loopback port; stop it afterwards."""
    if not moto_available():
        pytest.skip('moto[server] is not installed: run "make setup" (it is a dev dependency)')
    folder = Path(tempfile.mkdtemp(prefix="conveyor-moto-"))
    log = folder / "moto.log"
    for _attempt in range(5):  # another process may take the port between probing and binding
        port = free_port()
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
            )
        server = S3Server(f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if server.request("GET", "/moto-api/data.json") == 200:
                    break
            except OSError:
                time.sleep(0.05)
        if process.poll() is None and time.monotonic() < deadline:
            break
        process.kill()
        process.wait()
    else:
        raise RuntimeError(f"moto server did not start: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
