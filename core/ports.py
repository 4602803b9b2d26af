"""Free loopback ports for private services (tests, benchmarks, simulators).

Why not the kernel's ``bind(port 0)``: that hands out ports from the ephemeral range
(``net.ipv4.ip_local_port_range``, 32768-60999 by default), the same range every outgoing
connection takes its local port from. A service stopped and started again on its port (a
broker restart in a test, a chaos fault) then found it held by some client's connection:
"Address already in use" from a private Kafka restarted while another test process ran.
Ports here come from below that range, away from the fixed ports of the stack and the
benchmarks (21883, 22192-22494, 25432, 27092, 29092-29094, 30xxx, 31xxx).

Why leases: a port is free when handed out but bound only later, by whoever asked (often a
child process, seconds later). Two processes picking in that window got the same port (CI:
two pytest workers, "address already in use" on 24647). So every port handed out is leased
for :data:`LEASE_S` through a file created with ``O_EXCL`` in a directory shared by every
process of this user on the machine; nobody else is handed a leased port meanwhile.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
import time
from pathlib import Path

#: Where private services' ports come from: no fixed port of ours is in these ranges.
PRIVATE_PORTS: tuple[int, ...] = (*range(23000, 25000), *range(26000, 27000))
#: How long a handed-out port stays reserved for its taker: far longer than "handed out ->
#: bound" and than a test's stop-and-restart of its service, short enough that a test suite
#: never leases the whole pool.
LEASE_S = 300.0

_pick = random.SystemRandom()  # not the seeded `random` a test or a simulator may reset


def lease_dir() -> Path:
    """The leases of this user's processes (``TP_PORT_LEASES`` moves it, e.g. for a test)."""
    default = Path(tempfile.gettempdir()) / f"tourpulse-port-leases-{os.getuid()}"
    return Path(os.environ.get("TP_PORT_LEASES", default))


def free_port(
    kind: socket.SocketKind = socket.SOCK_STREAM, *, pair: bool = False, host: str = "127.0.0.1"
) -> int:
    """A port nothing is bound to or leased (TCP, or UDP with ``kind=SOCK_DGRAM``); with
    ``pair`` the next port is free too (Kafka's controller listens on port + 1)."""
    leases = lease_dir()
    leases.mkdir(mode=0o700, parents=True, exist_ok=True)
    for _ in range(400):
        port = _pick.choice(PRIVATE_PORTS)
        ports = (port, port + 1) if pair else (port,)
        if not all(_bindable(host, p, kind) for p in ports):
            continue
        taken = [p for p in ports if _lease(leases, p)]
        if len(taken) == len(ports):
            return port
        for p in taken:  # half a pair: give it back
            (leases / str(p)).unlink(missing_ok=True)
    raise RuntimeError(f"no free port in {PRIVATE_PORTS[0]}-{PRIVATE_PORTS[-1]} on {host}")


def _lease(leases: Path, port: int) -> bool:
    """Take the lease on ``port``: True if it was free or expired, False if someone holds it."""
    path = leases / str(port)
    try:
        if time.time() - path.stat().st_mtime < LEASE_S:
            return False
        # Expired: move it aside under a name of our own (only one mover wins the rename),
        # then create ours exclusively.
        stale = leases / f".{port}.{os.getpid()}.{_pick.getrandbits(32)}"
        os.rename(path, stale)
        stale.unlink()
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
