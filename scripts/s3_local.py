"""A throwaway S3-compatible server on loopback (moto), for the demo and the benchmark.

moto in server mode (``python -m moto.server``) is a dev dependency (requirements.lock). It
keeps every object in its own memory, so it is for trying things out, never for data you
want to keep. This script starts it on a free 127.0.0.1 port in the background, records its
pid, port and endpoint in a state folder, creates buckets and lists them with plain HTTP (no S3
client needed), and stops it again::

    python scripts/s3_local.py start --state build/s3-local --bucket demo
    eval "$(python scripts/s3_local.py env --state build/s3-local)"   # AWS_* for this shell
    python scripts/s3_local.py ls --state build/s3-local --bucket demo --prefix shop
    python scripts/s3_local.py stop --state build/s3-local

``env`` prints the standard AWS variables Conveyor reads (``AWS_ENDPOINT_URL``, a dummy key
pair, ``AWS_REGION``); moto accepts any key. ``stop`` only ends the process it started (the
pid in the state folder, checked to be a moto server).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "conveyor-local-key"
SECRET_KEY = "conveyor-local-secret"
REGION = "us-east-1"
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class LocalS3:
    """A running local server: its process id and endpoint."""

    pid: int
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """The AWS environment that points a client (Conveyor, boto3, the aws CLI) at it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        """One plain HTTP request; its status and body."""
        req = urllib.request.Request(f"{self.endpoint}/{path.lstrip('/')}", method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()

    def create_bucket(self, name: str) -> None:
        status, body = self.request("PUT", name)
        if status != 200:
            raise SystemExit(f"the local S3 server refused to create bucket {name}: HTTP {status} {body[:200]!r}")

    def objects(self, bucket: str, prefix: str = "") -> list[tuple[str, int]]:
        """Every (key, size) in ``bucket`` under ``prefix``, by ListObjectsV2 pages."""
        found: list[tuple[str, int]] = []
        token = ""
        while True:
            query = f"list-type=2&prefix={urllib.request.quote(prefix)}"
            if token:
                query += f"&continuation-token={urllib.request.quote(token)}"
            status, body = self.request("GET", f"{bucket}?{query}")
            if status != 200:
                raise SystemExit(f"listing bucket {bucket} failed: HTTP {status} {body[:200]!r}")
            root = ET.fromstring(body)
            for item in root.iter(f"{S3_NS}Contents"):
                found.append((item.findtext(f"{S3_NS}Key") or "", int(item.findtext(f"{S3_NS}Size") or 0)))
            token = root.findtext(f"{S3_NS}NextContinuationToken") or ""
            if root.findtext(f"{S3_NS}IsTruncated") != "true" or not token:
                return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(state: Path) -> LocalS3:
    """Start moto on a free loopback port, detached; write ``pid``, ``port`` and ``endpoint`` into ``state``."""
    state.mkdir(parents=True, exist_ok=True)
    if (state / "pid").exists():
        try:
            running = read(state)
            if running.request("GET", "/moto-api/data.json")[0] == 200:
                raise SystemExit(f"a local S3 server from {state} is already running at {running.endpoint}")
        except OSError:
            pass
        _forget(state)
    for _attempt in range(5):  # another process may take the port between probing and binding
        port = free_port()
        with open(state / "moto.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
                start_new_session=True,  # not stopped by the caller's Ctrl-C; `stop` ends it
            )
        server = LocalS3(process.pid, f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if server.request("GET", "/moto-api/data.json")[0] == 200:
                    (state / "pid").write_text(f"{process.pid}\n")
                    (state / "endpoint").write_text(f"{server.endpoint}\n")
                    (state / "port").write_text(f"{port}\n")
                    return server
            except OSError:
                time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        process.wait()
    log_text = (state / "moto.log").read_text(errors="replace")[-2000:]
    raise SystemExit(f"the moto server did not start (is moto[server] installed? run 'make setup'):\n{log_text}")


def read(state: Path) -> LocalS3:
    """The server a ``start`` recorded in ``state``."""
    try:
        return LocalS3(int((state / "pid").read_text()), (state / "endpoint").read_text().strip())
    except (OSError, ValueError):
        raise SystemExit(f"no local S3 server is recorded in {state}: run 'start' first") from None


def _is_moto(pid: int) -> bool:
    try:
        return b"moto.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _forget(state: Path) -> None:
    for name in ("pid", "endpoint", "port"):
        (state / name).unlink(missing_ok=True)


def stop(state: Path) -> None:
    """End the server ``start`` recorded (SIGTERM, then SIGKILL after 10 s); forget it."""
    if not (state / "pid").exists():
        return
    server = read(state)
    if _is_moto(server.pid):
        os.kill(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _is_moto(server.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_moto(server.pid):
            os.kill(server.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # reap it when it is our child
            os.waitpid(server.pid, os.WNOHANG)
    _forget(state)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_objects(server: LocalS3, bucket: str, prefix: str) -> None:
    objects = server.objects(bucket, prefix)
    for key, size in objects:
        print(f"{size:>12,}  s3://{bucket}/{key}")
    total = sum(size for _key, size in objects)
    print(f"{len(objects)} objects, {total:,} bytes under s3://{bucket}/{prefix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "env", "ls", "stop"])
    parser.add_argument("--state", type=Path, default=Path("build/s3-local"), help="folder for pid, endpoint, log")
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (start) or list (ls)")
    parser.add_argument("--prefix", default="", help="key prefix to list (ls)")
    args = parser.parse_args()
    if args.command == "start":
        server = start(args.state)
        for bucket in args.bucket:
            server.create_bucket(bucket)
        made = f", bucket {', '.join(args.bucket)}" if args.bucket else ""
        print(f"local S3 server (moto) at {server.endpoint}, pid {server.pid}{made}", file=sys.stderr)
    elif args.command == "env":
        for key, value in read(args.state).env.items():
            print(f"export {key}={shlex.quote(value)}")
    elif args.command == "ls":
        server = read(args.state)
        for bucket in args.bucket:
            print_objects(server, bucket, args.prefix)
    else:
        stop(args.state)


if __name__ == "__main__":
    main()
