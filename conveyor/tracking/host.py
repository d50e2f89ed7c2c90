"""Which host this process is, as recorded with runs, locks, heartbeats and the scheduler's lease.

The host name, unless ``CONVEYOR_HOST_ID`` names the host: then that. Two processes with
different host ids treat each other as on different machines, so neither judges the other's
liveness by its pid (which it cannot see across machines) but only by its heartbeats. Give
each machine that shares a tracking store a distinct id (the host name is, on a normal
network); tests run two "hosts" on one machine this way.
"""

from __future__ import annotations

import os
import socket

HOST_ID_ENV = "CONVEYOR_HOST_ID"


def host_id() -> str:
    """This host's id: ``CONVEYOR_HOST_ID`` when set (and not blank), else the host name."""
    return os.environ.get(HOST_ID_ENV, "").strip() or socket.gethostname()
