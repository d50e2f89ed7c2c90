"""Serving the dashboard: bind the address (a clear error when it is taken), then run uvicorn."""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Callable

from conveyor.errors import UserError
from conveyor.project import Project
from conveyor.web.app import create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one).

    Raises:
        UserError: the address is taken, not this machine's, or not understood.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise UserError(f'"{host}" is not an address or name of this machine.', hint="Use --host 127.0.0.1.") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is in use by another program.", hint="Choose another with --port."
            ) from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}.", hint="Check --host and --port.") from None
    sock.set_inheritable(True)
    return sock


def serve(
    project: Project,
    sock: socket.socket,
    *,
    token: str | None,
    host: str,
    started: Callable[[], None] = lambda: None,
) -> None:
    """Serve the dashboard of ``project`` on ``sock`` until SIGINT or SIGTERM; ``started`` is called first.

    uvicorn handles both signals while it serves (it finishes the requests in flight, then
    returns); the command line's own handlers, which cancel a run, are set aside meanwhile.
    """
    import uvicorn

    from conveyor import api

    # opened here, not when the app starts: a store that cannot be reached is the command's
    # error (a short message, exit code 2 or 1), not a failed start inside uvicorn
    store = api.open_tracking(project)
    app = create_app(project, token=token, host=host, store=store)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", server_header=False)
    server = uvicorn.Server(config)
    # uvicorn re-raises a signal it caught once it stops: ignored here, it must not reach the
    # command line's handlers, which would report a cancelled run
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        started()
        server.run(sockets=[sock])
    finally:
        store.close()  # the app closes it at shutdown too; closing twice is harmless
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
