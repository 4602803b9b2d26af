"""``tourpulse simulate wifi`` against the real Mosquitto: topics, contract, availability."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import DEVICE_CONFIG_DIR
from device_configs import load_device_configs
from schemas.batch import decode_events
from schemas.device import AvailabilityV1, DeviceHeartbeatV1
from schemas.topics import MqttStream, MqttTopic
from schemas.wifi import WifiSessionStartV1
from tests.support.net import until

SITES = 20
START = "2026-03-07T10:00:00+07:00"


class _Recorder:
    """Subscribes to everything a namespace's simulated edge agents publish."""

    def __init__(self, host: str, port: int, namespace: str) -> None:
        self.namespace = namespace
        self.messages: list[tuple[MqttTopic, Any, bool]] = []
        self.invalid: list[str] = []
        self.session_messages = 0
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sim-sub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        # Only this namespace's sites: on a shared broker, other traffic on a catch-all
        # filter can overflow this subscriber's queue and drop our messages.
        site_filters = [
            (f"tp/v1/{namespace}-{site.id}/wifi/+/+", 1)
            for site in load_device_configs(DEVICE_CONFIG_DIR).sites
        ]
        self.client.on_connect = lambda c, *_: c.subscribe(site_filters)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        topic = MqttTopic.parse(msg.topic)
        if not topic.site.startswith(self.namespace + "-") or not msg.payload:
            return
        try:
            events = decode_events(msg.payload)
        except ValueError as exc:
            with self.lock:
                self.invalid.append(f"{msg.topic}: {exc}")
            return
        with self.lock:
            self.session_messages += topic.stream == MqttStream.SESSION
            self.messages.extend((topic, event, bool(msg.retain)) for event in events)

    def of(self, stream: MqttStream) -> list[tuple[MqttTopic, Any, bool]]:
        with self.lock:
            return [m for m in self.messages if m[0].stream == stream]

    def clear_retained(self) -> None:
        """Leave the shared broker as we found it: drop our retained availability."""
        topics = {str(t) for t, _, _ in self.of(MqttStream.AVAILABILITY)}
        infos = [self.client.publish(t, b"", qos=1, retain=True) for t in topics]
        for info in infos:
            info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _simulate(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_overrides}
    cmd = [sys.executable, "-m", "infra.cli", "simulate", "wifi", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.integration
async def test_publishes_exactly_the_requested_events_on_the_edge_topics(
    stack: Any, namespace: str, tmp_path: Path
) -> None:
    recorder = _Recorder(stack.mqtt_host, stack.mqtt_port, namespace)
    try:
        await until(recorder.subscribed.is_set, "the subscription", 30)
        env = {
            "TP_MQTT_HOST": stack.mqtt_host,
            "TP_MQTT_PORT": str(stack.mqtt_port),
            "TP_DATA_DIR": str(tmp_path / ".tourpulse"),
        }
        args = ("--events", "500", "--site-prefix", namespace, "--seed", "7", "--start", START)
        done = await asyncio.to_thread(_simulate, env, *args)
        assert done.returncode == 0, done.stderr
        assert "done: 500 session events" in done.stderr

        def all_offline() -> bool:
            states = [e.data.state for _, e, _ in recorder.of(MqttStream.AVAILABILITY)]
            return states.count("offline") == SITES

        # Each agent says offline after its last event on the same connection.
        await until(all_offline, "every agent's offline availability", 60)
        sessions = recorder.of(MqttStream.SESSION)
        assert len(sessions) == 500
        assert recorder.invalid == []
        for topic, event, _ in sessions:
            assert (topic.site, topic.device) == (event.site, event.device)
            assert topic.kind == "wifi" and event.source == "sim.wifi"
        assert len({e.id for _, e, _ in sessions}) == 500
        # As fast as possible, each agent packs its events into a few batched messages.
        assert recorder.session_messages < 250
        assert any(isinstance(e, WifiSessionStartV1) for _, e, _ in sessions)

        availability = recorder.of(MqttStream.AVAILABILITY)
        per_state = Counter(e.data.state for _, e, _ in availability)
        assert per_state == {"online": SITES, "offline": SITES}
        beats = recorder.of(MqttStream.HEARTBEAT)
        assert {e.device for _, e, _ in beats} == {e.device for _, e, _ in availability}
        assert all(isinstance(e, DeviceHeartbeatV1) for _, e, _ in beats)

        # A dashboard connecting later learns each agent's state from the retained message.
        late = _Recorder(stack.mqtt_host, stack.mqtt_port, namespace)
        try:
            await until(lambda: len(late.of(MqttStream.AVAILABILITY)) == SITES, "retained", 30)
            for _, event, retained in late.of(MqttStream.AVAILABILITY):
                assert retained and isinstance(event, AvailabilityV1)
                assert (event.data.state, event.data.reason) == ("offline", "shutdown")
            late.clear_retained()
        finally:
            late.close()
    finally:
        recorder.close()


def test_unreachable_broker_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"TP_MQTT_PORT": str(port), "TP_DATA_DIR": str(tmp_path)}
    done = _simulate(env, "--events", "10", "--sites", "ben-thanh-market")
    assert done.returncode == 2
    assert f"cannot reach MQTT broker at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_site_is_a_clear_error(tmp_path: Path) -> None:
    done = _simulate({"TP_DATA_DIR": str(tmp_path)}, "--sites", "atlantis", "--events", "1")
    assert done.returncode == 2
    assert "unknown site(s): atlantis" in done.stderr


@pytest.mark.integration
async def test_a_killed_simulator_is_announced_offline_by_its_last_will(
    stack: Any, namespace: str, tmp_path: Path
) -> None:
    recorder = _Recorder(stack.mqtt_host, stack.mqtt_port, namespace)
    env = {
        **os.environ,
        "TP_MQTT_HOST": stack.mqtt_host,
        "TP_MQTT_PORT": str(stack.mqtt_port),
        "TP_DATA_DIR": str(tmp_path / ".tourpulse"),
    }
    cmd = [sys.executable, "-m", "infra.cli", "simulate", "wifi", "--site-prefix", namespace]
    cmd += ["--sites", "ben-thanh-market,saigon-zoo", "--start", START, "--speed", "1"]
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stderr=subprocess.DEVNULL)
    try:
        await until(recorder.subscribed.is_set, "the subscription", 30)

        def states() -> list[tuple[str, str | None]]:
            return [
                (e.data.state, e.data.reason) for _, e, _ in recorder.of(MqttStream.AVAILABILITY)
            ]

        await until(lambda: states().count(("online", None)) == 2, "both agents online", 60)
        proc.kill()  # no goodbye: only the broker can tell
        await until(lambda: states().count(("offline", "last-will")) == 2, "the last wills", 60)
        recorder.clear_retained()
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 30)
        recorder.close()


@pytest.mark.integration
def test_simulator_resends_what_the_broker_acknowledged_without_delivering(
    tmp_path: Path,
) -> None:
    """No subscriber (a broker just restarted, gateway not back): PUBACK 0x10, message gone.

    The simulator is no durable sender, but it must not count those as delivered: it keeps
    them in memory and publishes them again, so the demo and benchmarks lose nothing here.
    """
    from edge.simulator.generator import SimConfig, WifiSessionGenerator
    from edge.simulator.identity import SimulatedClockPseudonymiser
    from edge.simulator.publisher import SimPublisher
    from edge.simulator.site_link import PublishOptions
    from tests.support.edge_wifi_support import Collector, PrivateMosquitto
    from tests.support.net import wait_until

    broker = PrivateMosquitto(tmp_path).start()
    configs = load_device_configs(DEVICE_CONFIG_DIR)
    configs = configs.model_copy(update={"sites": configs.sites[:2]})
    start = datetime.fromisoformat(START)
    sim = SimConfig(start=start, seed=7)
    events = list(
        itertools.islice(
            WifiSessionGenerator(configs, sim, SimulatedClockPseudonymiser(tmp_path)), 300
        )
    )
    opts = PublishOptions(port=broker.port, speed=None, max_events=len(events), progress_s=60)
    publisher = SimPublisher({e.site for e in events}, opts)
    collector: Collector | None = None
    try:
        publisher.connect(start)
        runner = threading.Thread(target=publisher.run, args=(events,), daemon=True)
        runner.start()
        wait_until(lambda: publisher.stats.not_delivered > 0, 30, "a 0x10 PUBACK")
        collector = Collector(broker.port, "tp/+/+/+/+/session")
        runner.join(60)
        assert not runner.is_alive()
        want = {e.id for e in events}

        def got() -> set[str]:
            assert collector is not None
            return {ev.id for p in collector.payloads("/session") for ev in decode_events(p)}

        wait_until(lambda: got() >= want, 30, "every event delivered")
        assert got() == want
    finally:
        publisher.close(graceful=False)
        if collector is not None:
            collector.close()
        broker.stop()
