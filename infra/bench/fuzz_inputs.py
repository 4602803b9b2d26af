"""In-process fuzzing of every network input: MQTT payloads (the gateway's validator),
RADIUS accounting, hostapd syslog, Meraki Scanning API posts, WHEP SDP offers and the
captive portal's controller parameters and cookies.

A seeded mutational fuzzer (byte flips, cuts, duplications, JSON/SDP tokens, random
bytes) starts from valid inputs of each kind, so most cases get past the first check and
exercise the deeper parsing. For every input the harness checks what production relies
on: the entry point returns (a crash is any exception escaping it), and the input is
either accepted or rejected *with a counted reason* (a dead-letter reason, a drop counter,
a typed error); ``uncounted`` lists inputs that vanished without either. Memory is sampled
(RSS) so a parser that keeps what it sees shows up as growth.

Used by the test suite (a few hundred inputs per kind) and ``tourpulse bench security``
(10,000+ per kind).
"""

from __future__ import annotations

import base64
import json
import random
import resource
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

#: Tokens that tend to break parsers: JSON structure, numbers at the edges, SDP lines.
TOKENS = [
    b'"', b"{", b"}", b"[", b"]", b",", b":", b"\x00", b"\xff\xfe", b"null", b"-1",
    b"1e999", b"9" * 40, b"\\u0000", b"\r\n", b"=", b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    b"a=rtpmap:96 H264/90000\r\n", b"v=0\r\n", b"%", b"\xc3\x28", b" " * 64,
]  # fmt: skip

T = TypeVar("T")
Check = Callable[[bytes], str]  # "accepted" | "rejected"; anything else: uncounted


@dataclass
class FuzzResult:
    kind: str
    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    crash_count: int = 0
    uncounted_count: int = 0
    crashes: list[str] = field(default_factory=list)  # the first 20
    uncounted: list[str] = field(default_factory=list)  # the first 20
    rss_growth_kib: int = 0


def mutate(seed: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return rng.randbytes(rng.randint(0, 512))
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[pos : pos + rng.randint(1, 16)]
        elif op == 2:
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 3 and data:
            start = rng.randrange(len(data))
            data[pos:pos] = data[start : start + rng.randint(1, 64)]
        elif op == 4:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:
            del data[pos:]
    return bytes(data)


def run_kind(kind: str, n: int, seed: int = 0) -> FuzzResult:
    seeds, check = TARGETS[kind]()
    rng = random.Random(f"{kind}:{seed}")
    result = FuzzResult(kind)
    rss_before = _rss_kib()
    for i in range(n):
        data = seeds[i % len(seeds)] if i < len(seeds) else mutate(rng.choice(seeds), rng)
        result.inputs += 1
        try:
            verdict = check(data)
        except Exception as exc:  # the entry point let an exception escape: a crash
            result.crash_count += 1
            if len(result.crashes) < 20:
                result.crashes.append(f"{type(exc).__name__}: {exc} <- {data[:120]!r}")
            continue
        if verdict == "accepted":
            result.accepted += 1
        elif verdict == "rejected":
            result.rejected += 1
        else:
            result.uncounted_count += 1
            if len(result.uncounted) < 20:
                result.uncounted.append(f"{verdict} <- {data[:120]!r}")
    result.rss_growth_kib = max(0, _rss_kib() - rss_before)
    return result


def _rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- targets ------------------------------------------------------------------------------


def _mqtt() -> tuple[list[bytes], Check]:
    from schemas.device import DeviceHeartbeatV1, HeartbeatData
    from schemas.topics import DeviceKind, MqttStream, MqttTopic
    from schemas.wifi import WifiSessionData, WifiSessionStartV1
    from stream.gateway.routing import route

    now = datetime.now(UTC)
    common = {"site": "ben-thanh-market", "device": "edge-1", "source": "fuzz", "event_time": now}
    start = WifiSessionStartV1(
        **common, data=WifiSessionData(client_id="0" * 32, session_id="s-1", ap="ap-01")
    )
    beat = DeviceHeartbeatV1(**common, data=HeartbeatData(uptime_s=3.0))
    one = start.model_dump_json().encode()
    seeds = [one, beat.model_dump_json().encode(), b"[" + one + b"," + one + b"]"]
    topic = str(MqttTopic("ben-thanh-market", DeviceKind.WIFI, "edge-1", MqttStream.SESSION))

    def check(payload: bytes) -> str:
        records = route(topic, payload, now)
        if not records:
            return "no record"
        if any(r.reason is not None for r in records):
            return "rejected" if all(r.reason for r in records if r.reason) else "uncounted"
        return "accepted"

    return seeds, check


def _wifi_world() -> tuple[Any, Any, Any]:
    """An inventory with one RADIUS NAS and an AP with a BSSID, and a counting emitter."""
    from core.privacy import KeyStore, Pseudonymiser
    from core.settings import DEVICE_CONFIG_DIR
    from device_configs.loader import load_device_configs
    from device_configs.wifi import RadiusNas
    from edge.wifi.inventory import Inventory
    from edge.wifi.sessions import EventEmitter

    configs = load_device_configs(DEVICE_CONFIG_DIR)
    site = configs.sites[0]
    nas = RadiusNas.model_validate({"ip": "10.0.0.1", "secret": "secret:radius"})
    sites = [site.model_copy(update={"radius_nas": [nas]}), *configs.sites[1:]]
    ap = next(a for a in configs.access_points if a.site == site.id)
    ap = ap.model_copy(update={"bssids": ["f0:9f:c2:00:00:01"], "nas_identifier": "ap-fuzz-1"})
    aps = [ap, *(a for a in configs.access_points if a.id != ap.id)]
    configs = configs.model_copy(update={"sites": sites, "access_points": aps})
    inventory = Inventory(configs, {site.id}, {"radius": "fuzz-radius-secret"})

    class CountingSink:
        submitted = 0

        def submit(self, event: Any) -> int:
            CountingSink.submitted += 1
            return CountingSink.submitted

        def submit_many(self, events: list[Any]) -> None:
            CountingSink.submitted += len(events)

    key_dir = Path(tempfile.mkdtemp(prefix="tp-fuzz-keys-"))
    emitter = EventEmitter(
        CountingSink(), Pseudonymiser(KeyStore.in_dir(key_dir, scope="fuzz")), "edge-fuzz"
    )
    return inventory, emitter, ap


def _radius() -> tuple[list[bytes], Check]:
    import hashlib
    import struct

    from edge.wifi.radius_parse import Accepted, Rejected, load_dictionary, parse_accounting

    inventory, _, _ = _wifi_world()
    dictionary = load_dictionary()

    def attr(t: int, v: bytes) -> bytes:
        return bytes([t, len(v) + 2]) + v

    def packet(status: int, session: bytes) -> bytes:
        attrs = (
            attr(40, struct.pack("!I", status))
            + attr(44, session)
            + attr(31, b"3C-22-FB-01-02-03")
            + attr(30, b"F0-9F-C2-00-00-01:HCMC Free WiFi")
            + attr(32, b"ap-fuzz-1")
        )
        header = struct.pack("!BBH", 4, 7, 20 + len(attrs))
        auth = hashlib.md5(header + b"\x00" * 16 + attrs + b"fuzz-radius-secret").digest()
        return header + auth + attrs

    seeds = [packet(1, b"sess-1"), packet(2, b"sess-1"), packet(3, b"sess-2")]
    now = datetime.now(UTC)

    def check(data: bytes) -> str:
        out = parse_accounting(data, "10.0.0.1", now, inventory, dictionary)
        if isinstance(out, tuple):
            out = out[0]
        if isinstance(out, Accepted):
            return "accepted"
        return "rejected" if isinstance(out, Rejected) and out.reason else "uncounted"

    return seeds, check


def _syslog() -> tuple[list[bytes], Check]:
    from edge.wifi.syslog import SyslogAdapter

    inventory, emitter, ap = _wifi_world()
    adapter = SyslogAdapter(emitter, inventory)
    seeds = [
        f"<30>Jan  1 00:00:00 ap-fuzz-1 hostapd: wlan0: AP-STA-{e} 3c:22:fb:01:02:03".encode()
        for e in ("CONNECTED", "DISCONNECTED")
    ] + [
        f"<30>1 2026-01-01T00:00:00Z h tourpulse-ap[{ap.id}] - - - wlan0: AP-STA-CONNECTED "
        "aa:bb:cc:dd:ee:01 ssid=HCMC Free WiFi".encode()
    ]

    def check(data: bytes) -> str:
        stats = adapter.stats
        drops, events = sum(stats.drops.values()), stats.events
        adapter.datagram_received(data, ("10.0.0.1", 514))  # the site's controller
        if stats.events > events:
            return "accepted"
        return "rejected" if sum(stats.drops.values()) > drops else "uncounted"

    return seeds, check


def _meraki() -> tuple[list[bytes], Check]:
    from edge.wifi.meraki import MerakiScanningAdapter

    inventory, emitter, _ = _wifi_world()
    adapter = MerakiScanningAdapter(emitter, inventory, "127.0.0.1", 0, "/m", "v", "fuzz-secret")
    observation = {
        "clientMac": "3c:22:fb:01:02:03",
        "ssid": "HCMC Free WiFi",
        "latestRecord": {
            "time": "2026-01-01T00:00:00Z",
            "nearestApMac": "f0:9f:c2:00:00:01",
            "nearestApRssi": -60,
        },
    }
    body = {"version": "3.0", "secret": "fuzz-secret", "data": {"observations": [observation]}}
    seeds = [json.dumps(body).encode(), json.dumps({**body, "secret": "x"}).encode()]

    class FakeRequest:
        def __init__(self, raw: bytes) -> None:
            self.raw = raw

        async def json(self) -> Any:
            return json.loads(self.raw)

    def check(data: bytes) -> str:
        stats = adapter.stats
        drops, events = sum(stats.drops.values()), stats.events
        response = _drive(adapter._receive(FakeRequest(data)))  # type: ignore[arg-type]
        if response.status == 200:
            doc = json.loads(response.body)  # type: ignore[arg-type]
            counted = doc["accepted"] + sum(stats.drops.values()) - drops
            return (
                "accepted" if counted >= doc["received"] or stats.events > events else "uncounted"
            )
        return "rejected" if sum(stats.drops.values()) > drops else "uncounted"

    return seeds, check


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never really suspends (the handler awaits only our fake
    request), without an event loop per input."""
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError("the handler suspended; it needs a real event loop")


def _whep_sdp() -> tuple[list[bytes], Check]:
    from api.cameras.whep import WhepError, check_offer

    offer = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n"
        "a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
        "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n"
    )
    seeds = [offer.encode()]

    def check(data: bytes) -> str:
        # What the route does with a body: decode leniently, then check_offer (which parses
        # it as aiortc will) turns every malformed offer into a WhepError, a 400.
        sdp = data.decode("utf-8", errors="replace")
        try:
            check_offer(sdp)
        except WhepError:
            return "rejected"
        return "accepted"

    return seeds, check


def _portal_forms() -> tuple[list[bytes], Check]:
    from urllib.parse import parse_qsl, urlencode

    from pydantic import SecretStr

    from api.portal.controllers.meraki import MerakiAdapter
    from api.portal.controllers.opennds import OpenNDSAdapter, encrypt_query
    from api.portal.controllers.rfc8908 import DirectAdapter
    from api.portal.controllers.unifi import UniFiAdapter
    from api.portal.security import PortalError, Sealer
    from api.portal.settings import PortalSettings

    faskey = "fuzz-faskey-0123456789abcdef0123456789"
    settings = PortalSettings(
        secret=SecretStr("fuzz-portal-secret-0123456789abcdef"),
        opennds_faskey=SecretStr(faskey),
        opennds_gateways=["10.0.0.1"],
        grant_hosts=["*.network-auth.com"],
    )
    adapters = {
        a.name: a for a in (MerakiAdapter(), OpenNDSAdapter(), UniFiAdapter(), DirectAdapter())
    }
    sealer = Sealer(settings.secret.get_secret_value().encode())
    fas_text = (
        "clientip=10.0.0.2, clientmac=3c:22:fb:01:02:03, hid="
        + "ab" * 32
        + (", gatewayaddress=10.0.0.1:2050, authdir=opennds_auth, originurl=http%3A%2F%2Fe.com%2F")
    )
    iv = "0123456789abcdef"
    seeds = [
        b"meraki?" + urlencode({
            "base_grant_url": "https://n1.network-auth.com/splash/grant",
            "user_continue_url": "http://example.com/", "node_mac": "f0:9f:c2:00:00:01",
            "client_ip": "10.0.0.2", "client_mac": "3c:22:fb:01:02:03",
        }).encode(),
        b"opennds?" + urlencode({"fas": encrypt_query(fas_text, iv, faskey), "iv": iv}).encode(),
        b"opennds?" + urlencode({"fas": base64.b64encode(fas_text.encode()).decode()}).encode(),
        b"unifi?" + urlencode({
            "id": "3c:22:fb:01:02:03", "ap": "f0:9f:c2:00:00:01", "url": "http://e.com/",
            "_unifi_site": "default",
        }).encode(),
        b"rfc8908?continue=http%3A%2F%2Fexample.com%2F",
        b"cookie?" + sealer.seal({"ps": "x", "site": "s"}, 60).encode(),
    ]  # fmt: skip

    def check(data: bytes) -> str:
        name, _, query = data.decode("utf-8", errors="replace").partition("?")
        try:
            if name == "cookie":
                sealer.unseal(query)
                return "accepted"
            adapter = adapters.get(name)
            if adapter is None:
                return "rejected"  # an unknown controller is a 404 before any parsing
            adapter.parse(dict(parse_qsl(query, keep_blank_values=True)), settings)
        except PortalError as err:
            return "rejected" if err.key else "uncounted"
        return "accepted"

    return seeds, check


TARGETS: dict[str, Callable[[], tuple[list[bytes], Check]]] = {
    "mqtt": _mqtt,
    "radius": _radius,
    "syslog": _syslog,
    "meraki": _meraki,
    "whep_sdp": _whep_sdp,
    "portal_forms": _portal_forms,
}
