"""A RADIUS accounting client that behaves like a Wi-Fi controller (NAS) under faults.

Why not ``radclient``: the chaos suite must know *which* reports were answered (a RADIUS
reply means "stored" at the edge agent, the promise under test) and must keep
retransmitting the unanswered ones for as long as an outage lasts, as a NAS does; radclient
gives up after a few tries and reports only totals. A reply counts only when its Response
Authenticator verifies against the request, so a late reply to a retransmission can never
acknowledge a different packet that reuses the 8-bit identifier.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from pyrad.packet import AccountingRequest, AcctPacket

#: Each session sends these reports; the stored event type for each is its value.
REPORTS = (
    ("Start", "wifi.session.start", 0),
    ("Interim-Update", "wifi.session.interim", 60),
    ("Stop", "wifi.session.stop", 120),
)
RETRANSMIT_S = 2.0  # a controller's usual accounting retry interval
WINDOW = 64  # reports in flight (well below the 256 RADIUS identifiers)

#: What identifies one report in the stored rows: (session_id, event type).
Key = tuple[str, str]


def mac_of(session: str) -> str:
    """The client MAC of a session (its number, spread over the low four octets)."""
    n = int(session.rsplit("-", 1)[1])
    return f"02-C4-{n >> 24 & 255:02X}-{n >> 16 & 255:02X}-{n >> 8 & 255:02X}-{n & 255:02X}"


@dataclass
class NasLoad:
    """Send ``count`` reports of sessions named ``<prefix>-<n>`` at ``rate`` per second.

    ``answered`` maps each acknowledged report to the monotonic time of its reply;
    ``retransmissions`` counts re-sends (unanswered after :data:`RETRANSMIT_S`).
    """

    port: int
    secret: str
    nas_identifier: str
    prefix: str
    count: int
    rate: float
    answered: dict[Key, float] = field(default_factory=dict)
    retransmissions: int = 0
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def sessions(self) -> list[str]:
        """The Acct-Session-Id of every session of this load."""
        return sorted({session for session, _ in self.keys()})

    def keys(self) -> list[Key]:
        """Every report of this load, in sending order (session-major)."""
        sessions = (self.count + len(REPORTS) - 1) // len(REPORTS)
        out = [(f"{self.prefix}-{s:06d}", kind) for s in range(sessions) for _, kind, _ in REPORTS]
        return out[: self.count]

    def start(self) -> NasLoad:
        self._thread = threading.Thread(target=self._run, name=f"nas-{self.prefix}", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float) -> bool:
        """True once every report was answered (the load keeps retransmitting until then)."""
        assert self._thread is not None
        self._thread.join(timeout)
        return not self._thread.is_alive() and len(self.answered) == self.count

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def acked(self) -> set[Key]:
        with self._lock:
            return set(self.answered)

    def _packet(self, i: int, key: Key) -> AcctPacket:
        status, _kind, seconds = REPORTS[i % len(REPORTS)]
        session = key[0]
        pkt = AcctPacket(
            code=AccountingRequest, id=i % 256, secret=self.secret.encode(), dict=_DICT.get()
        )
        pkt["Acct-Status-Type"] = status
        pkt["Acct-Session-Id"] = session
        pkt["Calling-Station-Id"] = mac_of(session)
        pkt["NAS-Identifier"] = self.nas_identifier
        pkt["Acct-Session-Time"] = seconds
        return pkt

    def _run(self) -> None:
        try:
            self._send_all()
        except Exception as exc:  # reported by the harness, never swallowed
            self.error = repr(exc)

    def _send_all(self) -> None:
        keys = self.keys()
        # (packet, raw bytes, last send time) by RADIUS identifier, for the reports in flight.
        inflight: dict[int, tuple[Key, AcctPacket, bytes, float]] = {}
        started = time.monotonic()
        nxt = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("127.0.0.1", self.port))
            while (nxt < len(keys) or inflight) and not self._stop.is_set():
                now = time.monotonic()
                due = min(len(keys), int((now - started) * self.rate) + 1)
                while nxt < due and len(inflight) < WINDOW and (nxt % 256) not in inflight:
                    pkt = self._packet(nxt, keys[nxt])
                    raw = bytes(pkt.RequestPacket())
                    sock.send(raw)
                    inflight[nxt % 256] = (keys[nxt], pkt, raw, now)
                    nxt += 1
                for ident, (key, pkt, raw, sent) in list(inflight.items()):
                    if now - sent > RETRANSMIT_S:
                        sock.send(raw)  # byte-identical: same identifier and authenticator
                        inflight[ident] = (key, pkt, raw, now)
                        self.retransmissions += 1
                self._receive(sock, inflight)

    def _receive(
        self, sock: socket.socket, inflight: dict[int, tuple[Key, AcctPacket, bytes, float]]
    ) -> None:
        sock.settimeout(0.02)  # wait briefly for the first reply, then drain what is there
        while True:
            try:
                reply = sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            except ConnectionRefusedError:  # agent restarting: keep retransmitting
                return
            if len(reply) < 20 or reply[1] not in inflight:
                continue
            key, pkt, _raw, _sent = inflight[reply[1]]
            if not pkt.VerifyReply(pkt.CreateReply(), reply):
                continue
            del inflight[reply[1]]
            with self._lock:
                self.answered.setdefault(key, time.monotonic())
            sock.settimeout(0)


class _DictCache:
    """The agent's own RADIUS dictionary, loaded once (parsing it takes ~50 ms)."""

    def __init__(self) -> None:
        self._dict: object | None = None

    def get(self) -> object:
        if self._dict is None:
            from edge.wifi.radius_parse import load_dictionary

            self._dict = load_dictionary()
        return self._dict


_DICT = _DictCache()
