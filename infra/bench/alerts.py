"""Alert latency: MQTT publish of a device-offline event -> gateway -> Kafka ->
``tourpulse alerts`` -> Kafka -> API (IOC live feed) -> SSE client, end to end.

Everything runs as the real services (gateway, alert engine, API under uvicorn) in a
throwaway namespace and database. Each probe is an ``availability: offline`` for a new
device, so the engine opens a new alert (no retrigger throttling) and the API streams its
``alert`` event; latency is the SSE arrival minus the MQTT publish time (one clock).

Measured idle and while a separate process publishes ~5,000 background events/s (device
Wi-Fi session events from the simulator through the same broker, gateway and Kafka). The achieved
background rate is reported as measured at the gateway, not as requested.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from core.ports import free_port
from core.settings import Settings
from device_configs.loader import load_device_configs
from edge.simulator.generator import SimConfig, WifiSessionGenerator
from edge.simulator.identity import SimulatedClockPseudonymiser
from infra.bench.context import BenchContext, BenchError
from infra.bench.services import Service, delete_kafka_topics, fresh_database
from schemas.codec import encode_event
from schemas.device import AvailabilityData, AvailabilityV1
from schemas.topics import DeviceKind, KafkaTopic, MqttStream, MqttTopic
from stream.storage.migrate import apply as migrate

log = logging.getLogger(__name__)

PROBES, QUICK_PROBES = 60, 10
PROBE_GAP_S = 0.5  # between probes: each is one alert, not a burst
BACKGROUND_RATE = 5000
BACKGROUND_POOL = 20_000
BACKGROUND_LINGER_S = 0.05  # the simulator's default --linger-ms
WARM_S = 5.0  # background runs this long before the loaded probes start
ARRIVAL_TIMEOUT_S = 60.0  # after the last probe, for stragglers
PROBE_WAIT_S = 5.0  # per probe before sending the next anyway
TARGET = {"latency_p95_ms_loaded": 1000}


def run(ctx: BenchContext) -> dict[str, Any]:
    probes = ctx.events or (QUICK_PROBES if ctx.quick else PROBES)
    ns = "benchal" + uuid.uuid4().hex[:6]
    settings = ctx.settings
    with (
        tempfile.TemporaryDirectory(prefix="tp-bench-alerts-") as tmp,
        fresh_database(settings.database_url, f"tp_{ns}") as db_url,
    ):
        migrate(db_url)
        _create_topics(settings, ns)
        env = {"TP_TOPIC_NAMESPACE": ns, "DATABASE_URL": db_url, "TP_DATA_DIR": tmp}
        services: list[Service] = []
        api: subprocess.Popen[bytes] | None = None
        try:
            gateway = Service(
                "gateway",
                ["gateway", "--client-id", f"gw-{ns}", "--share-group", ns, "--stats-every", "0"],
                env,
                Path(tmp),
            )
            services.append(gateway)
            gateway.wait_healthy(60)
            alerts = Service("alerts", ["alerts", "--metrics-port", "0"], env, Path(tmp))
            services.append(alerts)
            alerts.wait_healthy(120)
            api, base = _start_api(env, Path(tmp))
            token = _operator_token(base, db_url)
            with _SseProbe(base, token) as sse:
                probe = _Prober(settings, ns, sse)
                idle, idle_lost, idle_legs = probe.run(probes)
                stop = multiprocessing.Event()
                received0 = gateway.metric("tp_gateway_received_total")
                t0 = time.monotonic()
                background = multiprocessing.Process(
                    target=_background,
                    args=(settings.mqtt_host, settings.mqtt_port, ns, tmp, stop),
                )
                background.start()
                try:
                    time.sleep(WARM_S)
                    loaded, loaded_lost, loaded_legs = probe.run(probes)
                finally:
                    stop.set()
                    background.join(30)
                elapsed = time.monotonic() - t0
                rate = (gateway.metric("tp_gateway_received_total") - received0) / elapsed
        finally:
            if api is not None:
                api.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    api.wait(30)
            for service in reversed(services):
                service.stop()
            delete_kafka_topics(settings.kafka_client_settings(), ns)
    result: dict[str, Any] = {
        "latency_ms": {"idle": _percentiles(idle), "loaded": _percentiles(loaded)},
        # Where the time goes: MQTT publish -> the alert's row (gateway, Kafka, engine) and
        # that row -> the SSE client (engine's producer, Kafka, API): one clock, one machine.
        "legs_ms": {
            "idle": {k: _percentiles(v) for k, v in idle_legs.items()},
            "loaded": {k: _percentiles(v) for k, v in loaded_legs.items()},
        },
        "background_events_per_s": round(rate),
        "background_events_per_s_requested": BACKGROUND_RATE,
        "probes": probes,
        "lost": {"idle": idle_lost, "loaded": loaded_lost},
        "path": "mqtt -> gateway -> kafka -> tourpulse alerts -> kafka -> api sse",
        "target": TARGET,
        "cpus": os.cpu_count(),
    }
    result["meets_target"] = (
        result["latency_ms"]["loaded"]["p95"] <= TARGET["latency_p95_ms_loaded"]
    )
    return result


def _create_topics(settings: Settings, ns: str) -> None:
    """The topics the API reads; no occupancy/flows workers run here to create them."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient(settings.kafka_client_settings().librdkafka())
    names = [
        KafkaTopic.OCCUPANCY_LIVE,
        KafkaTopic.OCCUPANCY_FUSED,
        KafkaTopic.FLOWS_HOURLY,
        KafkaTopic.ALERT_CHANGES,
    ]
    new = [NewTopic(f"{ns}.{t.value}", num_partitions=4, replication_factor=1) for t in names]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result()


def _percentiles(values: list[float]) -> dict[str, float | None]:
    """Over the probes that arrived (lost ones are reported separately)."""
    if len(values) < 2:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1)}


def _start_api(env: dict[str, str], log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    log_file = (log_dir / "api.log").open("wb")
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"api exited: {(log_dir / 'api.log').read_text()[-2000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp,
        ):
            if resp.status == 200:
                return proc, base
        time.sleep(0.5)
    raise BenchError("api not healthy within 120 s")


def _operator_token(base: str, db_url: str) -> str:
    password = uuid.uuid4().hex
    subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "users",
            "create",
            "--username",
            "bench",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        input=password + "\n",
        text=True,
        check=True,
        capture_output=True,
        env={**os.environ, "DATABASE_URL": db_url},
    )
    r = httpx.post(f"{base}/api/v1/auth/token", data={"username": "bench", "password": password})
    r.raise_for_status()
    return str(r.json()["access_token"])


class _SseProbe:
    """Reads the IOC feed in a thread; records when each device's alert arrives."""

    def __init__(self, base: str, token: str) -> None:
        self.arrived: dict[str, float] = {}
        #: The alert's created_at (the engine's transaction, on this machine's clock).
        self.created: dict[str, float] = {}
        self._cond = threading.Condition()
        self._base, self._token = base, token
        self._stop = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> _SseProbe:
        self._thread.start()
        if not self._ready.wait(60):
            raise BenchError("the IOC live feed did not answer")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop = True

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        with httpx.stream(
            "GET", f"{self._base}/api/v1/ioc/live", headers=headers, timeout=None
        ) as response:
            self._ready.set()
            event = None
            for line in response.iter_lines():
                if self._stop:
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "alert":
                    change = json.loads(line[5:])
                    if change["action"] == "raise":
                        device = change["alert"]["originator"]
                        created = datetime.fromisoformat(change["alert"]["created_at"])
                        with self._cond:
                            self.arrived[device] = time.time()
                            self.created[device] = created.timestamp()
                            self._cond.notify_all()

    def wait_for(self, device: str, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: device in self.arrived, timeout)


class _Prober:
    def __init__(self, settings: Settings, ns: str, sse: _SseProbe) -> None:
        # A configured site under the namespace: the gateway dead-letters unknown sites (the
        # bench's own "<ns>-probe" site got 0 of 60 alerts once that check came in).
        first = load_device_configs(settings.device_configs).sites[0].id
        self.site = f"{ns}-{first}"
        self.sse = sse
        self.count = 0
        self.client = make_mqtt_client(
            settings.mqtt_client_settings(), f"{ns}-prober", protocol=mqtt.MQTTv311
        )
        self.client.connect(settings.mqtt_host, settings.mqtt_port)
        self.client.loop_start()

    def run(self, n: int) -> tuple[list[float], int, dict[str, list[float]]]:
        """Send ``n`` probes; return the latencies of those whose alert arrived, how many
        never did (waiting up to ARRIVAL_TIMEOUT_S after the last one for stragglers) and
        the arrived ones' two legs (ms), split at the alert's ``created_at``."""
        sent: dict[str, float] = {}
        for _ in range(n):
            self.count += 1
            device = f"probe-{self.count:05d}"
            event = AvailabilityV1(
                site=self.site,
                device=device,
                source="bench",
                event_time=datetime.now(UTC),
                data=AvailabilityData(state="offline", reason="bench probe"),
            )
            topic = MqttTopic.build(self.site, DeviceKind.AP, device, MqttStream.AVAILABILITY)
            sent[device] = time.time()
            self.client.publish(str(topic), encode_event(event), qos=1).wait_for_publish(10)
            self.sse.wait_for(device, PROBE_WAIT_S)  # paced by arrivals while they keep up
            time.sleep(PROBE_GAP_S)
        deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
        for device in sent:
            self.sse.wait_for(device, max(0.0, deadline - time.monotonic()))
        arrived = {d: self.sse.arrived[d] - t for d, t in sent.items() if d in self.sse.arrived}
        latencies = [v * 1000 for v in arrived.values()]
        created = self.sse.created
        legs = {
            "to_engine": [(created[d] - sent[d]) * 1000 for d in arrived],
            "engine_to_feed": [(self.sse.arrived[d] - created[d]) * 1000 for d in arrived],
        }
        lost = len(sent) - len(arrived)
        log.info("probes: %d arrived, %d lost", len(latencies), lost)
        return latencies, lost, legs


def _background(host: str, port: int, ns: str, keys: str, stop: EventType) -> None:
    """Wi-Fi session events from the simulator at BACKGROUND_RATE/s (QoS 0), batched per
    device every BACKGROUND_LINGER_S as the simulator does by default: the spine's dominant
    real traffic, sharing the broker, gateway, Kafka and CPU with the alert path. A pool is
    generated once and re-sent with fresh ids. Runs in its own process so it does not steal
    the prober's GIL."""
    configs = load_device_configs(Settings().device_configs)
    sim = SimConfig(start=datetime.now(UTC), seed=7, site_prefix=ns, warmup=timedelta(hours=3))
    generator = WifiSessionGenerator(configs, sim, SimulatedClockPseudonymiser(Path(keys)))
    pool = list(itertools.islice(generator, BACKGROUND_POOL))
    topics = [
        str(MqttTopic.build(e.site, DeviceKind.WIFI, e.device, MqttStream.SESSION)) for e in pool
    ]
    client = make_mqtt_client(
        MqttClientSettings.from_env(host=host, port=port),
        f"{ns}-background",
        protocol=mqtt.MQTTv311,
    )
    client.max_queued_messages_set(20_000)
    client.connect(host, port)
    client.loop_start()
    started, sent = time.monotonic(), 0
    while not stop.is_set():
        due = int((time.monotonic() - started) * BACKGROUND_RATE)
        # Batched per device topic, as the edge agents and the simulator publish under load.
        batches: dict[str, list[bytes]] = {}
        while sent < due:
            i = sent % len(pool)
            event = pool[i].model_copy(update={"id": uuid.uuid4().hex})
            batches.setdefault(topics[i], []).append(encode_event(event))
            sent += 1
        for topic, events in batches.items():
            client.publish(topic, b"[" + b",".join(events) + b"]", qos=0)
        time.sleep(BACKGROUND_LINGER_S)
    client.loop_stop()
    client.disconnect()
