"""A local TCP relay that makes a driver's read wait for its consumer.

A driver that decodes a result set on a thread of its own (connectorx's ``arrow_stream``)
hands its batches over through an unbounded queue: when the consumer (converting and
writing Parquet) is slower than the server, the whole result set piles up in memory. The
relay sits between the driver and the server and forwards the server's bytes only while
the consumer has asked for more, so the server's send buffer (and the statement waiting on
it) absorbs the difference, as it does for any client that reads slowly.

:class:`Throttle` is the consumer's side. Bytes pass for as long as the consumer waits
for a batch (:meth:`Throttle.begin_wait`); otherwise the relay spends a credit that starts
at ``window`` bytes and that each batch the consumer takes replenishes by no more than the
wire bytes that batch took (:func:`wire_bytes_at_least`), never above ``window``. What
the driver holds is then at most about ``window`` bytes plus the batch it is building,
whatever the table's size. Waiting opens the gate, so the relay cannot deadlock a read.

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
import struct
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: bytes moved per system call
CHUNK = 256 * 1024
#: a control message: "w" (the consumer waits) or "g" and the bytes it grants
_MESSAGE = struct.Struct("<cQ")
#: the least a row takes on the wire: the packet header and the row's own header byte
_ROW_BYTES = 5


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

    def end_wait(self, grant: int) -> None:
        """The consumer got a batch that took at least ``grant`` bytes: that much more may pass."""
        with self._cond:
            self._waiting = False
            self._credit = min(self.window, self._credit + grant)

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

    def begin_wait(self) -> None:
        """The caller waits for its next batch: let the server's bytes through."""
        self._send(_MESSAGE.pack(b"w", 0))

    def end_wait(self, batch: pa.RecordBatch | None) -> None:
        """The caller got ``batch`` (None: the read ended or failed)."""
        self._send(_MESSAGE.pack(b"g", 0 if batch is None else wire_bytes_at_least(batch)))

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


def wire_bytes_at_least(batch: pa.RecordBatch) -> int:
    """A lower bound of the bytes ``batch`` took in MySQL's protocol: each row's headers and
    the data of its text and binary values (numbers count nothing, NULLs take no bytes)."""
    import pyarrow as pa

    total = batch.num_rows * _ROW_BYTES
    for column in batch.columns:
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_binary(kind):
            offsets = column.buffers()[1]
            if offsets is not None and len(column):
                ends = memoryview(offsets).cast("i")
                total += ends[column.offset + len(column)] - ends[column.offset]
        elif pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
            offsets = column.buffers()[1]
            if offsets is not None and len(column):
                ends = memoryview(offsets).cast("q")
                total += ends[column.offset + len(column)] - ends[column.offset]
    return total


def _serve(argv: list[str]) -> None:
    """The relay process: ``listener-fd control-fd host port window connect-timeout``."""
    listener = socket.socket(fileno=int(argv[0]))
    control = socket.socket(fileno=int(argv[1]))
    gate = Gate(int(argv[4]))
    relay = Relay(listener, argv[2], int(argv[3]), gate, connect_timeout=float(argv[5]))
    pending = b""
    try:
        while True:
            received = control.recv(4096)
            if not received:
                break  # the reading process closed its end, or died
            pending += received
            while len(pending) >= _MESSAGE.size:
                kind, grant = _MESSAGE.unpack_from(pending)
                pending = pending[_MESSAGE.size :]
                if kind == b"w":
                    gate.begin_wait()
                else:
                    gate.end_wait(grant)
    finally:
        relay.close()
        os._exit(0)


if __name__ == "__main__":
    _serve(sys.argv[1:])
