"""Private services' ports come from below the kernel's ephemeral range (see core.ports)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from core import ports
from core.ports import PRIVATE_PORTS, free_port


@pytest.fixture(autouse=True)
def _own_leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of picks here must not use up the leases the rest of the suite shares."""
    monkeypatch.setenv("TP_PORT_LEASES", str(tmp_path / "leases"))


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


def test_a_port_handed_out_is_not_handed_out_again_while_leased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free when handed out but bound later: another process must not get it meanwhile
    (CI: two pytest workers both got 24647)."""
    monkeypatch.setenv("TP_PORT_LEASES", str(tmp_path))
    monkeypatch.setattr(ports, "PRIVATE_PORTS", tuple(range(23000, 23010)))
    first = {free_port() for _ in range(10)}
    assert first == set(range(23000, 23010))  # ten ports, ten different picks
    with pytest.raises(RuntimeError, match="no free port"):
        free_port()  # all leased, none bound
    stale = time.time() - ports.LEASE_S - 1
    os.utime(tmp_path / "23004", (stale, stale))
    assert free_port() == 23004  # an expired lease is taken over
