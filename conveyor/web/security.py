"""The dashboard's defences: who may act, from where, and what a browser may load.

* Reading needs nothing: the server binds to 127.0.0.1 unless told otherwise.
* An action (a POST: pause a pipeline, ...) needs the token the server was started with
  (``CONVEYOR_UI_TOKEN``), as ``Authorization: Bearer TOKEN`` or the field ``token`` of a
  URL-encoded form. A server started without one refuses every action. A request that a
  browser marks as coming from another site (``Sec-Fetch-Site``, or an ``Origin`` other than this server's) is refused
  before its token is even looked at: a page elsewhere cannot act with a user's browser.
* On loopback, a request whose ``Host`` is not a loopback name is refused: a hostile web page
  cannot reach the dashboard through a DNS name it points at 127.0.0.1 (DNS rebinding).
* Every response forbids framing, sniffing and any script or style not served by the
  dashboard itself (``Content-Security-Policy``).
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

TOKEN_VARIABLE = "CONVEYOR_UI_TOKEN"
MIN_TOKEN_LENGTH = 16
MAX_FORM_BYTES = 64 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 with or without brackets) is this machine only."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name part of a ``Host`` header: ``127.0.0.1:8086`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """ASGI middleware: refuses foreign ``Host`` headers on loopback; adds the security headers and
    ``Server-Timing`` (milliseconds from the request to the response's start)."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool):
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not is_loopback(host_name(host)):
                response = PlainTextResponse(
                    "This dashboard answers only to loopback names (127.0.0.1, localhost, [::1]).", status_code=421
                )
                await self._send_secured(response, scope, receive, send)
                return

        began = time.perf_counter()

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                # the server's own time for the response (its page rendered), shown in the browser's
                # network panel and read by bench/ui
                took = f"app;dur={(time.perf_counter() - began) * 1000:.2f}".encode()
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS, (b"server-timing", took)]
            await send(message)

        await self.app(scope, receive, secured)

    @staticmethod
    async def _send_secured(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await response(scope, receive, secured)


def refused(status: int, message: str) -> JSONResponse:
    """An action's refusal: its HTTP status and a sentence saying why and what to do."""
    headers = {"WWW-Authenticate": 'Bearer realm="conveyor"'} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def cross_origin(request: Request) -> bool:
    """Whether the browser says the request comes from another site than this dashboard."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    return origin.lower() != own


async def check_action(request: Request, token: str | None) -> JSONResponse | None:
    """None when ``request`` may act; else the refusal to send.

    Order matters: a cross-site request is refused whatever it carries, then a server without a
    token refuses everything, then the token must match (compared in constant time).
    """
    if cross_origin(request):
        return refused(403, "Refused: the request comes from another site than this dashboard.")
    if not token:
        return refused(
            403, f"Actions are off: start `conveyor ui` with {TOKEN_VARIABLE} set to allow them (read-only now)."
        )
    given = None
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        given = value.strip()
    elif request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = await request.body()
        if len(body) <= MAX_FORM_BYTES:
            fields = parse_qs(body.decode("utf-8", "replace"))
            values = fields.get("token")
            given = values[0] if values and values[0] else None
    if given is None:
        return refused(401, f"This action needs the dashboard's token ({TOKEN_VARIABLE}): send it as a Bearer token.")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return refused(401, "The token is wrong: give the value of CONVEYOR_UI_TOKEN the server was started with.")
    return None
