"""Private services' ports come from below the kernel's ephemeral range (see core.ports)."""

from __future__ import annotations

import socket
from pathlib import Path

from core.ports import PRIVATE_PORTS, free_port


def test_private_ports_are_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert max(PRIVATE_PORTS) + 1 < low  # + 1: a pair's controller port
    assert all(free_port(pair=True) + 1 < low for _ in range(20))


def test_a_bound_port_is_never_handed_out() -> None:
    held = []
    try:
        for port in PRIVATE_PORTS[:400]:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        picks = {free_port() for _ in range(200)}
        assert not picks & taken
        pairs = {free_port(pair=True) for _ in range(200)}
        assert not {p for p in pairs if p in taken or p + 1 in taken}
    finally:
        for s in held:
            s.close()
