"""Gateway throughput benchmark: ``python -m stream.gateway.bench`` -> ``.bench/gateway.json``.

Publishers run in separate processes (paho in Python would otherwise share the gateway's
GIL and measure itself); the gateway runs in this process against the real Mosquitto and
Kafka, confined to a fresh namespace and site. The figure is events confirmed by Kafka
per second, from the first publish to the last delivery confirmation.
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
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from infra.settings import get_settings
from schemas.codec import encode_event
from schemas.topics import DeviceKind, MqttStream, MqttTopic
from schemas.wifi import WifiSessionData, WifiSessionStartV1
from stream.gateway.gateway import Gateway, GatewayConfig

log = logging.getLogger("tourpulse.bench.gateway")


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


def _publish(host: str, port: int, topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(events: int, publishers: int, drain: bool, out: Path) -> dict[str, Any]:
    """Publish ``events`` and time the gateway forwarding them.

    ``drain``: publish while the gateway is down (the broker queues them in its persistent
    session), then start it and time only the drain. That measures the gateway at
    saturation, independent of how fast Python publishers are; it needs Mosquitto's
    ``max_queued_messages`` above ``events`` (the default 1000 drops the rest).
    """
    ns = "bench" + uuid.uuid4().hex[:6]
    settings = get_settings().model_copy(update={"topic_namespace": ns})
    config = GatewayConfig(client_id=f"gw-{ns}", share_group=ns, site=ns, session_expiry_s=60)
    gateway = _started(Gateway(settings, config))
    per = events // publishers
    total = per * publishers
    jobs = []
    for p in range(publishers):
        device = f"bench-{p}"
        topic = str(MqttTopic.build(ns, DeviceKind.WIFI, device, MqttStream.SESSION))
        jobs.append((settings.mqtt_host, settings.mqtt_port, topic, _payloads(ns, device, per)))
    procs = [mp.get_context("fork").Process(target=_publish, args=job) for job in jobs]
    if drain:
        gateway.stop()
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        log.info("%d events queued by the broker; starting the gateway", total)
    cpu_before = _cpu_seconds()
    started = time.monotonic()
    if drain:
        gateway = _started(Gateway(settings, config))
    else:
        for proc in procs:
            proc.start()
    m = gateway.metrics
    deadline = started + 600
    next_report = started + 2
    while m.value("tp_gateway_forwarded_total") < total and time.monotonic() < deadline:
        time.sleep(0.02)
        if time.monotonic() > next_report:
            next_report += 2
            log.info("forwarded %d / %d", m.value("tp_gateway_forwarded_total"), total)
    elapsed = time.monotonic() - started
    cpu = _cpu_seconds() - cpu_before
    for proc in procs:
        proc.join(timeout=30)
    forwarded = m.value("tp_gateway_forwarded_total")
    latency_n = max(m.value("tp_gateway_latency_seconds_count"), 1)
    result = {
        "mode": "drain" if drain else "live",
        "events": total,
        "forwarded": forwarded,
        "seconds": round(elapsed, 3),
        "events_per_s": round(forwarded / elapsed, 1),
        "mean_latency_ms": round(1000 * m.value("tp_gateway_latency_seconds_sum") / latency_n,
                                 2),
        # CPU the gateway process (all threads, librdkafka included) spent per event: a
        # figure that survives a busy machine, unlike the wall-clock rate above.
        "gateway_cpu_us_per_event": round(1e6 * cpu / max(forwarded, 1), 1),
        "gateway_events_per_cpu_s": round(forwarded / max(cpu, 1e-9), 1),
        "publishers": publishers,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    gateway.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _started(gateway: Gateway) -> Gateway:
    gateway.start()
    if not gateway.wait_subscribed(30):
        raise SystemExit("gateway did not subscribe to MQTT within 30 s")
    return gateway


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--drain", action="store_true",
                        help="queue everything first, then time the gateway alone")
    parser.add_argument("--out", type=Path, default=Path(".bench/gateway.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = run(args.events, args.publishers, args.drain, args.out)
    print(json.dumps(result))
    return 0 if result["forwarded"] >= result["events"] else 1


if __name__ == "__main__":
    sys.exit(main())
