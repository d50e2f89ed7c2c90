"""A local TCP relay that makes a driver's read wait for its consumer.

A driver that decodes a result set on a thread of its own (connectorx's ``arrow_stream``)
hands its batches over through an unbounded queue: when the consumer (converting and
writing Parquet) is slower than the server, the whole result set piles up in memory. The
relay sits between the driver and the server and forwards the server's bytes only while
the consumer has asked for more, so the server's send buffer (and the statement waiting on
it) absorbs the difference, as it does for any client that reads slowly.

:class:`Throttle` is the consumer's side. Around every ``read_next_batch`` the consumer
enters :meth:`Throttle.waiting`: bytes pass for as long as it waits, then ``window`` bytes
of read-ahead are granted for the time it processes the batch it got. What the driver
holds is then at most about ``window`` bytes plus the batch it is building, whatever the
table's size. Waiting opens the gate, so the relay cannot deadlock a read.

The relay runs in a small process of its own (this file as a script, standard library
only): connectorx holds the GIL while it connects, so a relay thread in the reading
process could not accept the connection it waits for. Bytes from the driver to the server
pass at once (queries and acknowledgements). When the reading process closes its control
socket (or dies), the relay closes every connection and exits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

#: bytes moved per system call
CHUNK = 256 * 1024


class Gate:
    """How many bytes the relay may still pass to the driver before the consumer asks again."""

    def __init__(self, window: int):
        self.window = max(int(window), CHUNK)
        self._credit = self.window
        self._waiting = False
        self._closed = False
        self._cond = threading.Condition()

    def begin_wait(self) -> None:
        """The consumer waits for its next batch: let bytes through."""
        with self._cond:
            self._waiting = True
            self._cond.notify_all()

    def end_wait(self) -> None:
        """The consumer got a batch: ``window`` bytes of read-ahead from here."""
        with self._cond:
            self._waiting = False
            self._credit = self.window

    def take(self) -> None:
        """Block until bytes may pass (the consumer waits, or read-ahead is left)."""
        with self._cond:
            while not self._closed and not self._waiting and self._credit <= 0:
                self._cond.wait()

    def spend(self, count: int) -> None:
        with self._cond:
            self._credit -= count

    def close(self) -> None:
        """Let everything through from now on (the read ended or failed)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Relay:
    """Relays every connection ``listener`` accepts to ``host:port``, server to driver through ``gate``."""

    def __init__(self, listener: socket.socket, host: str, port: int, gate: Gate, *, connect_timeout: float = 10):
        self.target = (host, port)
        self.gate = gate
        self.connect_timeout = connect_timeout
        self._listener = listener
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, name="conveyor-relay", daemon=True).start()

    def close(self) -> None:
        """Stop accepting, open the gate and close every relayed connection."""
        with self._lock:
            self._stopped = True
            sockets, self._sockets = self._sockets, []
        self.gate.close()
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.target, timeout=self.connect_timeout)
                server.settimeout(None)
            except OSError:
                client.close()  # the driver sees a lost connection and reports it
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopped:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, gated: bool) -> None:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                if gated:
                    self.gate.take()
                count = src.recv_into(buffer)
                if not count:
                    break
                dst.sendall(view[:count])
                if gated:
                    self.gate.spend(count)
        except OSError:
            pass
        finally:
            # pass the end on: the other side sees EOF (or a reset) as it would from the server
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                src.shutdown(socket.SHUT_RD)


class Throttle:
    """The reading process's handle on a relay process to ``host:port`` (a context manager).

    The driver connects to ``127.0.0.1:<port>`` instead of the server; the consumer wraps
    each wait for a batch in :meth:`waiting`.
    """

    def __init__(self, host: str, port: int, window: int, *, connect_timeout: float = 10):
        listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        self._control, theirs = socket.socketpair()
        try:
            argv = [sys.executable, "-I", "-S", __file__, str(listener.fileno()), str(theirs.fileno())]
            argv += [host, str(port), str(int(window)), str(connect_timeout)]
            self._process = subprocess.Popen(argv, pass_fds=(listener.fileno(), theirs.fileno()), close_fds=True)
        finally:
            listener.close()
            theirs.close()

    def __enter__(self) -> Throttle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Let the server's bytes through while the caller waits for its next batch."""
        self._send(b"w")
        try:
            yield
        finally:
            self._send(b"g")

    def _send(self, message: bytes) -> None:
        with contextlib.suppress(OSError):
            self._control.sendall(message)

    def close(self) -> None:
        """End the relay process and every connection it relays."""
        with contextlib.suppress(OSError):
            self._control.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _serve(argv: list[str]) -> None:
    """The relay process: ``listener-fd control-fd host port window connect-timeout``."""
    listener = socket.socket(fileno=int(argv[0]))
    control = socket.socket(fileno=int(argv[1]))
    gate = Gate(int(argv[4]))
    relay = Relay(listener, argv[2], int(argv[3]), gate, connect_timeout=float(argv[5]))
    try:
        while True:
            messages = control.recv(4096)
            if not messages:
                break  # the reading process closed its end, or died
            # only the last message counts: "w" opens the gate, "g" grants a window
            if messages[-1:] == b"w":
                gate.begin_wait()
            else:
                gate.end_wait()
    finally:
        relay.close()
        os._exit(0)


if __name__ == "__main__":
    _serve(sys.argv[1:])
