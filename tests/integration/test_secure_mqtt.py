"""A secured Mosquitto (TLS with certificates made for the run + password file + generated
least-privilege ACL): every identity can do exactly what it needs, an unauthenticated or
plaintext client is refused, and the API -> camera command path works only this way.

All clients here are built by the one factory (``make_mqtt_client``), so this also proves
that the factory's credentials and TLS settings are applied.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.reasoncodes import ReasonCode

from api.cameras.state import CommandSender
from api.portal.events import FunnelPublisher
from api.portal.settings import PortalSettings
from core.mqtt_client import MqttClientSettings, make_mqtt_client
from device_configs.models import Camera
from edge.camera.commands import CommandSubscriber
from infra.cli import main
from infra.stack.certs import make_server_cert
from schemas.portal import ImpressionData, PortalImpressionV1
from tests.support.edge_wifi_support import PrivateMosquitto

pytestmark = pytest.mark.integration

SITE = "ben-thanh-market"
TIMEOUT = 10.0


def _write_configs(root: Path) -> Path:
    cfg = root / "device_configs"
    cfg.mkdir(parents=True)
    (cfg / "sites.yaml").write_text(
        f"sites:\n- id: {SITE}\n  name_vi: Chợ Bến Thành\n  name_en: Ben Thanh Market\n"
        "  kind: urban\n  lat: 10.7725\n  lon: 106.698\n  capacity_persons: 3000\n"
        "  wifi_agent: btm-wifi\n"
    )
    (cfg / "cameras.yaml").write_text(
        "cameras:\n"
        + "".join(f"- id: {c}\n  site: {SITE}\n  name: {c}\n" for c in ("cam1", "cam2"))
    )
    return cfg


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MqttClientSettings, dict[str, str]]]:
    root = tmp_path_factory.mktemp("secure-mqtt")
    cfg = _write_configs(root)
    out, secrets = root / "mqtt", root / "secrets.yaml"
    services = ["gateway=tp-gateway", "api=tp-api", "portal=tp-portal"]
    argv = ["devices", "acl", "--config", str(cfg), "--secrets", str(secrets), "--out", str(out)]
    assert (
        main([*argv, *(a for s in services for a in ("--service", s)), "--generate-missing"]) == 0
    )
    certs = make_server_cert(root / "tls")
    mosquitto = PrivateMosquitto(
        root,
        f"cafile {certs.ca}\ncertfile {certs.cert}\nkeyfile {certs.key}\n"
        f"allow_anonymous false\npassword_file {out / 'passwd'}\nacl_file {out / 'acl'}\n",
    ).start()
    passwords = {k.removeprefix("mqtt-"): v for k, v in yaml.safe_load(secrets.read_text()).items()}
    try:
        yield MqttClientSettings(host="127.0.0.1", port=mosquitto.port, tls_ca=certs.ca), passwords
    finally:
        mosquitto.stop()


class Probe:
    """One connected client that reports CONNACK, SUBACK, PUBACK and messages as seen."""

    def __init__(self, settings: MqttClientSettings) -> None:
        self.client = make_mqtt_client(settings, f"probe-{uuid.uuid4().hex[:8]}")
        self.connack: ReasonCode | None = None
        self.acks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, ReasonCode] = {}
        self.messages: list[str] = []
        self._event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self._put(self.acks, mid, rc)
        self.client.on_subscribe = lambda _c, _u, mid, rcs, _p: self._put(self.subacks, mid, rcs[0])
        self.client.on_message = self._on_message
        self.client.connect(settings.host, settings.port, keepalive=30)
        self.client.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK")

    def _on_connect(self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        with self._event:
            self.connack = rc
            self._event.notify_all()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._event:
            self.messages.append(msg.topic)
            self._event.notify_all()

    def _put(self, into: dict[int, ReasonCode], mid: int, rc: ReasonCode) -> None:
        with self._event:
            into[mid] = rc
            self._event.notify_all()

    def _wait(self, ready: object, what: str) -> None:
        with self._event:
            assert self._event.wait_for(ready, TIMEOUT), f"no {what}"  # type: ignore[arg-type]

    def publish(self, topic: str) -> bool:
        mid = self.client.publish(topic, b"{}", qos=1).mid
        self._wait(lambda: mid in self.acks, f"PUBACK for {topic}")
        return not self.acks[mid].is_failure

    def subscribe(self, topic: str) -> bool:
        _, mid = self.client.subscribe(topic, qos=1)
        self._wait(lambda: mid in self.subacks, f"SUBACK for {topic}")
        return not self.subacks[mid].is_failure

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _as(settings: MqttClientSettings, passwords: dict[str, str], user: str) -> Probe:
    probe = Probe(settings.with_credentials(user, passwords[user]))
    assert probe.connack is not None and not probe.connack.is_failure, probe.connack
    return probe


def _topic(kind: str, device: str, stream: str, site: str = SITE) -> str:
    return f"tp/v1/{site}/{kind}/{device}/{stream}"


def test_unauthenticated_wrong_password_and_plaintext_clients_are_refused(broker) -> None:
    settings, passwords = broker
    anonymous = Probe(settings)
    assert anonymous.connack is not None and anonymous.connack.is_failure
    anonymous.close()
    wrong = Probe(settings.with_credentials("tp-api", "not-the-password"))
    assert wrong.connack is not None and wrong.connack.is_failure
    wrong.close()
    plain = make_mqtt_client(
        settings.model_copy(update={"tls_ca": None}).with_credentials("tp-api", passwords["tp-api"])
    )
    plain.connect(settings.host, settings.port, keepalive=5)
    results = [plain.loop(timeout=0.1) for _ in range(30)]
    assert not plain.is_connected()  # the TLS listener hangs up on a plaintext CONNECT
    assert any(rc != mqtt.MQTT_ERR_SUCCESS for rc in results)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_client_that_does_not_trust_the_ca_is_refused(broker, tmp_path: Path) -> None:
    settings, passwords = broker
    other_ca = make_server_cert(tmp_path).ca  # a different CA: the broker's cert fails to verify
    client = make_mqtt_client(
        settings.model_copy(update={"tls_ca": other_ca}).with_credentials(
            "tp-api", passwords["tp-api"]
        )
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(settings.host, settings.port, keepalive=5)


# (identity, topic, allowed to publish there)
PUBLISH = [
    # a camera publishes its own telemetry and never writes a cmd (its own or another's)
    ("cam1", _topic("camera", "cam1", "video"), True),
    ("cam1", _topic("camera", "cam1", "event"), True),
    ("cam1", _topic("camera", "cam1", "cmd"), False),
    ("cam1", _topic("camera", "cam2", "cmd"), False),
    ("cam1", _topic("camera", "cam2", "video"), False),
    ("cam1", _topic("camera", "cam1", "video", "notre-dame-cathedral"), False),
    ("cam1", _topic("wifi", "cam1", "session"), False),
    # a Wi-Fi agent: sessions and presence of its own site, no commands
    ("btm-wifi", _topic("wifi", "btm-wifi", "session"), True),
    ("btm-wifi", _topic("wifi", "btm-wifi", "presence"), True),
    ("btm-wifi", _topic("wifi", "btm-wifi", "cmd"), False),
    ("btm-wifi", _topic("camera", "cam1", "cmd"), False),
    # the API is the only writer of camera commands
    ("tp-api", _topic("camera", "cam1", "cmd"), True),
    ("tp-api", _topic("camera", "cam1", "video"), False),
    ("tp-api", _topic("wifi", "btm-wifi", "cmd"), False),
    # the portal only writes funnel events
    ("tp-portal", _topic("portal", "tp-portal", "funnel"), True),
    ("tp-portal", _topic("portal", "portal-2", "funnel"), False),  # only its own device
    ("tp-portal", _topic("camera", "cam1", "cmd"), False),
    ("tp-portal", _topic("wifi", "btm-wifi", "session"), False),
    # the gateway writes nothing
    ("tp-gateway", _topic("camera", "cam1", "cmd"), False),
    ("tp-gateway", _topic("wifi", "btm-wifi", "session"), False),
]
# (identity, subscription, (writer, topic) fed after subscribing, delivered to identity)
# Mosquitto grants every SUBACK and enforces read rights on delivery, so delivery is tested.
RECEIVE = [
    ("cam1", _topic("camera", "cam1", "cmd"), ("tp-api", _topic("camera", "cam1", "cmd")), True),
    ("cam1", _topic("camera", "cam2", "cmd"), ("tp-api", _topic("camera", "cam2", "cmd")), False),
    ("cam1", "tp/#", ("btm-wifi", _topic("wifi", "btm-wifi", "session")), False),
    ("tp-api", "tp/#", ("btm-wifi", _topic("wifi", "btm-wifi", "session")), False),
    ("tp-portal", "tp/#", ("btm-wifi", _topic("wifi", "btm-wifi", "session")), False),
    ("tp-gateway", "tp/#", ("btm-wifi", _topic("wifi", "btm-wifi", "session")), True),
]
USERS = sorted({r[0] for r in PUBLISH} | {r[0] for r in RECEIVE})


def test_each_identity_publishes_exactly_where_it_may(broker) -> None:
    settings, passwords = broker
    probes = {user: _as(settings, passwords, user) for user in USERS}
    try:
        got = [(user, topic, probes[user].publish(topic)) for user, topic, _ in PUBLISH]
        assert got == PUBLISH
    finally:
        for probe in probes.values():
            probe.close()


def test_each_identity_receives_exactly_what_it_may(broker) -> None:
    settings, passwords = broker
    got = []
    for user, subscription, (writer, topic), _ in RECEIVE:
        reader, feeder = _as(settings, passwords, user), _as(settings, passwords, writer)
        try:
            assert reader.subscribe(subscription)
            assert feeder.publish(topic)
            with reader._event:
                reader._event.wait_for(lambda r=reader, t=topic: t in r.messages, 1.0)
            got.append((user, subscription, (writer, topic), topic in reader.messages))
        finally:
            reader.close()
            feeder.close()
    assert got == RECEIVE


async def test_api_command_reaches_only_its_camera_over_tls(broker) -> None:
    settings, passwords = broker
    loop = asyncio.get_running_loop()
    queues: dict[str, asyncio.Queue[bytes]] = {c: asyncio.Queue() for c in ("cam1", "cam2")}
    subscribers = [
        CommandSubscriber(settings.with_credentials(c, passwords[c]), SITE, c, queues[c], loop)
        for c in ("cam1", "cam2")
    ]
    gateway = _as(settings, passwords, "tp-gateway")
    assert gateway.subscribe("tp/#")
    sender = CommandSender(settings.with_credentials("tp-api", passwords["tp-api"]))
    try:
        for sub in subscribers:
            sub.start()
        for sub in subscribers:
            await asyncio.wait_for(sub.subscribed.wait(), TIMEOUT)
        camera = Camera.model_validate({"id": "cam1", "site": SITE, "name": "cam1"})
        # The sender connects in the background (TLS: seconds on a loaded 2-core CI box; a
        # command sent before that waits in paho's queue, which CI once saw time out).
        for _ in range(int(3 * TIMEOUT * 10)):
            if sender._client.is_connected():
                break
            await asyncio.sleep(0.1)
        assert sender._client.is_connected(), "the API's command sender never connected"
        command_id = sender.send(camera, "operator", {"action": "stop"})
        payload = json.loads(await asyncio.wait_for(queues["cam1"].get(), 2 * TIMEOUT))
        assert payload["data"]["command_id"] == command_id
        issued = datetime.fromisoformat(payload["event_time"])
        assert (datetime.now(UTC) - issued).total_seconds() < 5
        await asyncio.sleep(0.5)
        assert queues["cam2"].empty()  # cam2 never sees cam1's commands
    finally:
        sender.close()
        for sub in subscribers:
            sub.stop()
        gateway.close()


async def test_portal_publisher_uses_its_own_identity_and_only_its_topic(
    broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The funnel publisher, configured as the API process runs it (``TP_MQTT_*`` = the API's
    identity, ``TP_PORTAL_MQTT_*`` = the portal's), publishes as ``tp-portal``: its events
    reach the gateway; the same connection cannot write any other topic."""
    settings, passwords = broker
    monkeypatch.setenv("TP_PORTAL_MQTT_USERNAME", "tp-portal")
    monkeypatch.setenv("TP_PORTAL_MQTT_PASSWORD", passwords["tp-portal"])
    portal = PortalSettings()
    assert portal.device_id == "tp-portal"
    api_identity = settings.with_credentials("tp-api", passwords["tp-api"])
    publisher = FunnelPublisher(portal.mqtt_client_settings(api_identity))
    gateway = _as(settings, passwords, "tp-gateway")
    assert gateway.subscribe("tp/#")
    acks: dict[int, ReasonCode] = {}
    publisher.client.on_publish = lambda _c, _u, mid, rc, _p: acks.__setitem__(mid, rc)
    event = PortalImpressionV1(
        site=SITE,
        device=portal.device_id,
        source="portal",
        event_time=datetime.now(UTC),
        data=ImpressionData(client_id="ab" * 16, portal_session="cd" * 16,
                            controller="meraki", language="vi"),
    )  # fmt: skip
    try:
        assert await asyncio.to_thread(publisher.connected.wait, TIMEOUT)
        publisher.publish(event)
        funnel = _topic("portal", "tp-portal", "funnel")
        with gateway._event:
            assert gateway._event.wait_for(lambda: funnel in gateway.messages, TIMEOUT)
        others = [_topic("portal", "portal-1", "funnel"), _topic("camera", "cam1", "cmd"),
                  _topic("wifi", "btm-wifi", "session")]  # fmt: skip
        mids = [publisher.client.publish(t, b"{}", qos=1).mid for t in others]
        for _ in range(int(TIMEOUT * 20)):
            if all(m in acks for m in mids):
                break
            await asyncio.sleep(0.05)
        assert [acks[m].is_failure for m in mids] == [True, True, True]
        await asyncio.sleep(0.3)
        assert gateway.messages == [funnel]  # nothing else was delivered
    finally:
        publisher.close()
        gateway.close()
