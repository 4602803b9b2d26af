"""Free loopback ports for private services (tests, benchmarks, simulators).

Why not the kernel's ``bind(port 0)``: that hands out ports from the ephemeral range
(``net.ipv4.ip_local_port_range``, 32768-60999 by default), the same range every outgoing
connection takes its local port from. A service stopped and started again on its port (a
broker restart in a test, a chaos fault) then found it held by some client's connection:
"Address already in use" from a private Kafka restarted while another test process ran.
Ports here come from below that range, away from the fixed ports of the stack and the
benchmarks (21883, 22192-22494, 25432, 27092, 29092-29094, 30xxx, 31xxx); a random pick
checked by binding keeps concurrent test processes apart.
"""

from __future__ import annotations

import random
import socket

#: Where private services' ports come from: no fixed port of ours is in these ranges.
PRIVATE_PORTS: tuple[int, ...] = (*range(23000, 25000), *range(26000, 27000))

_pick = random.SystemRandom()  # not the seeded `random` a test or a simulator may reset


def free_port(
    kind: socket.SocketKind = socket.SOCK_STREAM, *, pair: bool = False, host: str = "127.0.0.1"
) -> int:
    """A port nothing is bound to (TCP, or UDP with ``kind=SOCK_DGRAM``); with ``pair`` the
    next port is free too (Kafka's controller listens on port + 1)."""
    for _ in range(200):
        port = _pick.choice(PRIVATE_PORTS)
        if all(_bindable(host, p, kind) for p in ((port, port + 1) if pair else (port,))):
            return port
    raise RuntimeError(f"no free port in {PRIVATE_PORTS[0]}-{PRIVATE_PORTS[-1]} on {host}")


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
