"""A tiny HTTP proxy on loopback in front of an S3 server, that fails requests on purpose.

Point ``AWS_ENDPOINT_URL`` at :attr:`FaultProxy.endpoint` instead of the server: every request
is forwarded as it came (headers, signature and body untouched, ``Host`` included), and the
answer is relayed, unless a :class:`Fault` matches it first. A fault answers with an HTTP
error carrying an S3 error document (``503 SlowDown``, ``403 AccessDenied``, ``403
InvalidAccessKeyId`` ...) or resets the connection (a TCP RST, as a load balancer dropping
it would). Real sockets throughout: the clients under test see exactly what a failing S3
endpoint sends them, and nothing in their process is patched.

::

    with FaultProxy(s3_server.endpoint) as proxy:
        proxy.add(Fault(status=503, code="SlowDown", times=3))        # the first 3 requests
        proxy.add(Fault(reset=True, times=2, method="PUT"))            # then 2 PUTs reset
        proxy.add(Fault(status=403, code="AccessDenied", method="PUT"))  # every PUT, forever
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


@dataclass
class Fault:
    """What to do to matching requests: answer ``status`` with S3 error ``code``, or ``reset`` the connection.

    ``times``: how many matching requests it hits (None: all of them). ``method`` and
    ``path_contains`` narrow which requests match (``path_contains`` is searched in the
    request's path and query).
    """

    status: int = 503
    code: str = "SlowDown"
    reset: bool = False
    times: int | None = None
    method: str | None = None
    path_contains: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and method != self.method:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass
class Seen:
    """One request the proxy saw, and what became of it."""

    method: str
    path: str
    outcome: str  # "forwarded 200", "injected 503 SlowDown", "reset"


@dataclass
class FaultProxy:
    """The proxy: start with ``with FaultProxy(endpoint) as proxy``; add faults any time."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._mutex = threading.Lock()
        target = urlparse(self.upstream)
        self._host, self._port = target.hostname or "127.0.0.1", target.port or 80
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, fault: Fault) -> Fault:
        with self._mutex:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._mutex:
            self.faults.clear()

    def injected(self) -> list[Seen]:
        return [s for s in self.seen if not s.outcome.startswith("forwarded")]

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._mutex:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
        return None

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._mutex:
            self.seen.append(Seen(method, path, outcome))

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    raw = b""
                    while True:
                        size_line = self.rfile.readline()
                        raw += size_line
                        size = int(size_line.split(b";")[0].strip() or b"0", 16)
                        chunk = self.rfile.read(size + 2)
                        raw += chunk
                        if size == 0:
                            while chunk not in (b"\r\n", b""):  # trailers, then the blank line
                                chunk = self.rfile.readline()
                                raw += chunk
                            return raw
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                method, path = self.command, self.path
                body = self._body()
                fault = proxy._fault_for(method, path)
                if fault is not None and fault.reset:
                    proxy._record(method, path, "reset")
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()  # RST: the client reads "connection reset by peer"
                    self.close_connection = True
                    return
                if fault is not None:
                    proxy._record(method, path, f"injected {fault.status} {fault.code}")
                    document = (
                        '<?xml version="1.0" encoding="UTF-8"?>\n'
                        f"<Error><Code>{fault.code}</Code><Message>injected by the test proxy</Message>"
                        f"<RequestId>test</RequestId></Error>"
                    ).encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(document) if method != "HEAD" else 0))
                    self.end_headers()
                    if method != "HEAD":
                        self.wfile.write(document)
                    return
                upstream = http.client.HTTPConnection(proxy._host, proxy._port, timeout=60)
                try:
                    upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() != "connection":
                            upstream.putheader(name, value)
                    upstream.endheaders(body or None)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                proxy._record(method, path, f"forwarded {answer.status}")
                self.send_response_only(answer.status, answer.reason)
                length = answer.getheader("Content-Length") if method == "HEAD" else None
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "content-length", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", length if length is not None else str(len(data)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="s3-fault-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as proxy:
        yield proxy
