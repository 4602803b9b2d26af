"""Gateway throughput benchmark: MQTT in, Kafka-confirmed out, for the gateway stage alone.

``python -m infra.bench.gateway`` writes ``.bench/gateway.json``; :func:`run` has the
``infra.bench`` interface, so ``tourpulse bench gateway`` can run it too.

Publishers run in separate processes (paho in Python would otherwise share the gateway's
GIL and measure itself); the gateway runs in this process against the real Mosquitto and
Kafka, confined to a fresh namespace and site. The figure is events confirmed by Kafka per
second, from the first publish to the last delivery confirmation, plus the CPU the gateway
process burnt per event (all threads, librdkafka's included), which survives a busy
machine better than the wall-clock rate.

Publishers stay at most :data:`MAX_LEAD` events ahead of the gateway: Mosquitto drops QoS 1
messages queued beyond ``max_queued_messages`` (1000 by default) for a subscriber that falls
behind, which would turn an overload into loss instead of a lower rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from core.settings import Settings, get_settings
from schemas.batch import join_batch
from schemas.codec import encode_event
from schemas.topics import DeviceKind, MqttStream, MqttTopic
from schemas.wifi import WifiSessionData, WifiSessionStartV1
from stream.gateway.config import GatewayConfig
from stream.gateway.gateway import Gateway

log = logging.getLogger("tourpulse.bench.gateway")

DEFAULT_EVENTS = 30_000
QUICK_EVENTS = 2_000
PUBLISHERS = 2
#: Published minus forwarded; below receive maximum (2000) + Mosquitto's queue (1000).
MAX_LEAD = 1500
#: Events a publisher sends between looks at the gateway's progress.
LEAD_CHECK_EVERY = 100


def _payloads(site: str, device: str, n: int) -> list[bytes]:
    now = datetime.now(UTC)
    return [
        encode_event(
            WifiSessionStartV1(
                site=site,
                device=device,
                source="bench",
                event_time=now,
                data=WifiSessionData(client_id=f"{i:032x}", session_id=f"b-{i}", ap="ap-01"),
            )
        )
        for i in range(n)
    ]


def _publish(
    host: str,
    port: int,
    topic: str,
    payloads: list[bytes],
    per_message: int,
    published: Synchronized[int],
    forwarded: Synchronized[int],
) -> None:
    client = make_mqtt_client(MqttClientSettings.from_env(host=host, port=port))
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    infos = []
    for i, payload in enumerate(payloads):
        if i % LEAD_CHECK_EVERY == 0:
            with published.get_lock():
                published.value += min(LEAD_CHECK_EVERY, len(payloads) - i) * per_message
            while published.value - forwarded.value > MAX_LEAD * per_message:
                time.sleep(0.002)
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    settings: Settings, events: int, publishers: int = PUBLISHERS, batch: int = 1
) -> dict[str, Any]:
    """Run one gateway and ``publishers`` publisher processes; return the figures.

    ``batch`` > 1 packs that many events per MQTT message (:mod:`schemas.batch`)."""
    ns = "bench" + uuid.uuid4().hex[:6]
    settings = settings.model_copy(update={"topic_namespace": ns})
    config = GatewayConfig(client_id=f"gw-{ns}", share_group=ns, site=ns, session_expiry_s=60)
    gateway = Gateway(settings, config)
    gateway.start()
    try:
        if not gateway.wait_subscribed(30):
            raise RuntimeError("gateway did not subscribe to MQTT within 30 s")
        return _drive(gateway, settings, events // publishers // batch * batch, publishers, batch)
    finally:
        gateway.stop()


def _drive(
    gateway: Gateway, settings: Settings, per: int, publishers: int, batch: int
) -> dict[str, Any]:
    fork = mp.get_context("fork")
    published, forwarded = fork.Value("q", 0), fork.Value("q", 0)
    procs = []
    for p in range(publishers):
        device = f"bench-{p}"
        topic = str(
            MqttTopic.build(gateway.config.site or "", DeviceKind.WIFI, device, MqttStream.SESSION)
        )
        events = _payloads(gateway.config.site or "", device, per)
        payloads = [join_batch(events[i : i + batch]) for i in range(0, per, batch)]
        args = (
            settings.mqtt_host,
            settings.mqtt_port,
            topic,
            payloads,
            batch,
            published,
            forwarded,
        )
        procs.append(fork.Process(target=_publish, args=args))
    total = per * publishers
    m = gateway.metrics
    cpu_before, started = _cpu_seconds(), time.monotonic()
    for proc in procs:
        proc.start()
    next_report = started + 2
    while forwarded.value < total and time.monotonic() < started + 600:
        time.sleep(0.005)
        forwarded.value = int(m.value("tp_gateway_forwarded_total"))
        if time.monotonic() > next_report:
            next_report += 2
            log.info("forwarded %d / %d", forwarded.value, total)
    elapsed, cpu = time.monotonic() - started, _cpu_seconds() - cpu_before
    for proc in procs:
        proc.join(timeout=30)
    done = m.value("tp_gateway_forwarded_total")
    return {
        "events": total,
        "forwarded": done,
        "seconds": round(elapsed, 3),
        "events_per_s": round(done / elapsed, 1),
        "mean_latency_ms": round(
            1000
            * m.value("tp_gateway_latency_seconds_sum")
            / max(m.value("tp_gateway_latency_seconds_count"), 1),
            2,
        ),
        "gateway_cpu_us_per_event": round(1e6 * cpu / max(done, 1), 1),
        "gateway_events_per_cpu_s": round(done / max(cpu, 1e-9), 1),
        "publishers": publishers,
        "batch": batch,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def run(ctx: Any) -> dict[str, Any]:
    """``infra.bench`` entry point (``ctx`` is an ``infra.bench.context.BenchContext``)."""
    events = ctx.events or (QUICK_EVENTS if ctx.quick else DEFAULT_EVENTS)
    result = measure(ctx.settings, events)
    if result["forwarded"] < result["events"]:
        raise RuntimeError(f"only {result['forwarded']:.0f} of {result['events']} forwarded")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--publishers", type=int, default=PUBLISHERS)
    parser.add_argument(
        "--batch", type=int, default=1, help="events per MQTT message (default 1: no batching)"
    )
    parser.add_argument("--out", type=Path, default=Path(".bench/gateway.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = measure(get_settings(), args.events, args.publishers, args.batch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0 if result["forwarded"] >= result["events"] else 1


if __name__ == "__main__":
    sys.exit(main())
