"""End-to-end spine benchmark: simulator -> MQTT -> gateway -> Kafka -> worker -> PostgreSQL.

One run on the running stack, in a fresh Kafka namespace and database:

1. baseline: that broker's own QoS 1 publish -> subscribe rate for payloads of the same size
   (:mod:`infra.bench.mosquitto`), so the result can be read as a ratio to it;
2. ``tourpulse gateway`` and ``tourpulse worker`` start as subprocesses (the real CLI) and a
   few hundred events go through end to end, so group joins and topic creation are done;
3. throughput: simulator events (20 sites) published as fast as the pipeline takes them;
   ``events_per_s`` = events / (first publish -> all rows visible in PostgreSQL), with the
   CPU seconds every stage burnt meanwhile (``cpu_share``, ``cpu_ms_per_event``);
4. latency: more events at :data:`PACED_SHARE` of that rate, because latency at saturation
   only measures the queue (kept as ``saturated_latency_ms``). Latency per event = its
   row's ``stored_at`` (database clock, same machine) minus the moment it was handed to the
   MQTT client. ``stored_at`` defaults to ``now()``, the start of the worker's batch
   transaction, so the commit itself (a few ms) is not included.

MQTT goes through a private Mosquitto started for the run (the gateway forwards every
site's topics, so other traffic on the shared broker would be counted as ours); Kafka and
PostgreSQL are the shared ones, isolated by topic namespace and a fresh database. The
publisher batches session events per device as the simulator does (``batch`` events or
``linger_ms``, see :mod:`schemas.batch`) and keeps its lead over what the gateway has
received below :data:`MAX_LEAD` MQTT messages: Mosquitto drops QoS 1 messages queued beyond
``max_queued_messages`` for a subscriber that falls behind, which would turn an overload
into loss instead of a lower rate. Service logs are kept in ``<out>/pipeline-run/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from core.settings import Settings
from device_configs.loader import load_device_configs
from edge.simulator.generator import SimConfig, WifiEvent, WifiSessionGenerator
from edge.simulator.identity import SimulatedClockPseudonymiser
from edge.simulator.publisher import PublishOptions, SimPublisher
from infra.bench import mosquitto
from infra.bench.context import BenchContext, BenchError
from infra.bench.cpu import CpuMeter, by_cmdline, by_name, only
from infra.bench.services import (
    Service,
    delete_kafka_topics,
    fresh_database,
    private_mosquitto,
)
from schemas.codec import encode_event

log = logging.getLogger(__name__)

DEFAULT_EVENTS = 30_000
QUICK_EVENTS = 2_000
WARMUP_EVENTS = 300
WORKERS = 2  # one per core; the topic has 4 partitions
MAX_LEAD = 1500  # MQTT messages published - received by the gateway (receive max 2000)
LEAD_CHECK_EVERY = 250  # events between reads of the gateway's counter
PUBLISH = PublishOptions()  # the simulator's batching defaults
SETTLE_TIMEOUT_S = 120.0  # no new rows for this long = events lost
BACKGROUND_S = 5.0  # idle window measuring what shared services burn without us
PACED_SHARE = 0.7  # the latency run publishes at this share of the saturated rate
TARGET = {"events_per_s": 5000, "latency_p95_ms": 2000}


def run(ctx: BenchContext) -> dict[str, Any]:
    n = ctx.events or (QUICK_EVENTS if ctx.quick else DEFAULT_EVENTS)
    n_paced = max(n // 3, 500)
    ns = "bench" + uuid.uuid4().hex[:6]
    load_before = os.getloadavg()[0]
    work = ctx.out_dir / "pipeline-run"  # configs and service logs, kept for diagnosis
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with (
        fresh_database(ctx.settings.database_url, f"tp_{ns}") as db_url,
        private_mosquitto(work) as (mqtt_port, broker_pid),
    ):
        settings = ctx.settings.model_copy(
            update={"mqtt_host": "127.0.0.1", "mqtt_port": mqtt_port}
        )
        events = _events(settings.device_configs, work, ns, WARMUP_EVENTS + n + n_paced)
        warmup, saturate = events[:WARMUP_EVENTS], events[WARMUP_EVENTS : WARMUP_EVENTS + n]
        paced = events[WARMUP_EVENTS + n :]
        payload = round(statistics.mean(len(encode_event(e)) for e in events[:1000]))
        baseline = mosquitto.measure(
            settings.mqtt_host, settings.mqtt_port, min(n, 20_000), payload
        )
        log.info("mosquitto baseline: %.0f msgs/s for %d-byte payloads", baseline, payload)
        with _Spine(settings, ns, db_url, work, broker_pid) as spine:
            spine.send(warmup)
            spine.wait_rows(len(warmup))
            background = spine.cpu_meter()
            background.start()
            time.sleep(BACKGROUND_S)
            background.stop()
            meter = spine.cpu_meter()
            meter.start()
            messages0 = spine.gateway.metric("tp_gateway_messages_total")
            sent_at = spine.send(saturate)
            done_at = spine.wait_rows(WARMUP_EVENTS + n)
            cpu = meter.stop()
            messages = spine.gateway.metric("tp_gateway_messages_total") - messages0
            rate = n / (done_at - min(sent_at.values()))
            log.info("saturated: %.0f events/s; latency run at %.0f/s", rate, rate * PACED_SHARE)
            paced_at = spine.send(paced, rate=rate * PACED_SHARE)
            spine.wait_rows(len(events))
        stored = _stored_at(db_url, {**sent_at, **paced_at})
    return _result(
        rate,
        _percentiles(sent_at, stored),
        _percentiles(paced_at, stored),
        baseline,
        payload,
        cpu,
        meter.net_seconds(background),
        n,
        load_before,
        messages,
    )


class _Spine:
    """Gateway and workers as subprocesses in namespace ``ns``; torn down on exit."""

    def __init__(
        self, settings: Settings, ns: str, db_url: str, log_dir: Path, broker_pid: int
    ) -> None:
        self.settings, self.ns, self.db_url = settings, ns, db_url
        self.broker_pid = broker_pid
        env = {
            "TP_TOPIC_NAMESPACE": ns,
            "DATABASE_URL": db_url,
            "TP_MQTT_HOST": settings.mqtt_host,
            "TP_MQTT_PORT": str(settings.mqtt_port),
        }
        gateway_args = ["gateway", "--client-id", f"gw-{ns}", "--share-group", ns]
        self.gateway = Service("gateway", [*gateway_args, "--stats-every", "0"], env, log_dir)
        self.worker: Service | None = None
        try:
            self.gateway.wait_healthy(60)
            worker_args = ["worker", "--workers", str(WORKERS)]
            self.worker = Service("worker", worker_args, env, log_dir, WORKERS)
            self.worker.wait_healthy(120)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _Spine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for service in (self.worker, self.gateway):
            if service is not None:
                service.stop()
        delete_kafka_topics(self.settings.kafka_bootstrap, self.ns)

    def cpu_meter(self) -> CpuMeter:
        assert self.worker is not None
        return CpuMeter(
            {
                "simulator": only(os.getpid()),
                "gateway": {self.gateway.pid},
                "worker": {self.worker.pid},
                "mosquitto": {self.broker_pid},
                "kafka": by_cmdline("kafka.Kafka"),
                "postgres": by_name("postgres"),
            }
        )

    def send(self, events: list[WifiEvent], rate: float | None = None) -> dict[str, float]:
        """Publish like the simulator does; returns the wall time each event was sent."""
        return _publish(self.settings, events, self.gateway, rate)

    def wait_rows(self, expected: int) -> float:
        try:
            return _wait_rows(self.db_url, self.ns, expected, time.time())
        except BenchError as exc:
            counters = {
                name: self.gateway.metric(f"tp_gateway_{name}_total")
                for name in ("received", "forwarded", "dead_lettered", "produce_errors")
            }
            where = self.gateway.log_path.parent
            raise BenchError(f"{exc}; gateway {counters}; logs in {where}") from None


def _events(config_dir: Path, keys: Path, ns: str, count: int) -> list[WifiEvent]:
    """Simulator events for all sites, generated up front so generation is not measured."""
    configs = load_device_configs(config_dir)
    start = datetime.now(UTC)
    sim = SimConfig(start=start, seed=42, site_prefix=ns, warmup=timedelta(hours=3))
    gen = WifiSessionGenerator(configs, sim, SimulatedClockPseudonymiser(keys))
    out = []
    for event in gen:
        out.append(event)
        if len(out) == count:
            return out
    raise BenchError("the simulator ran dry")  # pragma: no cover - the stream is endless


def _publish(
    settings: Settings, events: list[WifiEvent], gateway: Service, rate: float | None
) -> dict[str, float]:
    sent_at: dict[str, float] = {}
    sites = sorted({e.site for e in events})
    opts = PublishOptions(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        speed=None,
        rate=rate,
        window=2000,
        batch=PUBLISH.batch,
        linger_s=PUBLISH.linger_s,
    )
    publisher = SimPublisher(
        sites, opts, progress=_log_progress, on_sent=lambda e, t: sent_at.__setitem__(e.id, t)
    )
    received0 = gateway.metric("tp_gateway_messages_total")
    publisher.connect(events[0].event_time)
    try:
        publisher.run(_keep_lead(events, publisher, gateway, received0))
    finally:
        publisher.close()
    return sent_at


def _keep_lead(
    events: Iterable[WifiEvent], publisher: SimPublisher, gateway: Service, received0: float
) -> Iterator[WifiEvent]:
    """Hold events back while the gateway lags too far behind the broker (see module doc).

    Counted in MQTT messages (what Mosquitto queues); ``received0`` is the gateway's
    message counter before the publisher connected.
    """
    for i, event in enumerate(events):
        if i % LEAD_CHECK_EVERY == 0:
            while True:
                published = publisher.stats.published
                received = gateway.metric("tp_gateway_messages_total") - received0
                if published - received < MAX_LEAD:
                    break
                time.sleep(0.005)
        yield event


def _wait_rows(db_url: str, ns: str, expected: int, since: float) -> float:
    """Poll the raw table until ``expected`` of our rows are visible; return that wall time.

    Only rows of our namespace's sites count: the gateway forwards every site's topics, so
    traffic of anything else publishing on the broker lands in the table too.
    """
    last_count, last_change = -1, time.monotonic()
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM wifi_session_events WHERE site LIKE %s", (f"{ns}-%",)
            ).fetchone()
            count = int(row[0]) if row else 0
            if count >= expected:
                return time.time()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > SETTLE_TIMEOUT_S:
                raise BenchError(
                    f"only {count} of {expected} events reached PostgreSQL "
                    f"({time.time() - since:.0f} s after publishing)"
                )
            time.sleep(0.1)


def _stored_at(db_url: str, sent_at: dict[str, float]) -> dict[str, float]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT event_id, extract(epoch FROM stored_at)::float8 FROM wifi_session_events"
        ).fetchall()
    return {event_id: float(t) for event_id, t in rows if event_id in sent_at}


def _percentiles(sent_at: dict[str, float], stored: dict[str, float]) -> dict[str, float]:
    """Latency percentiles (ms) of the events in ``sent_at``; all must have been stored."""
    missing = len(sent_at) - sum(1 for i in sent_at if i in stored)
    if missing:
        raise BenchError(f"{missing} of {len(sent_at)} measured events are missing")
    in_order = [(stored[i] - t) * 1000 for i, t in sorted(sent_at.items(), key=lambda x: x[1])]
    latencies = sorted(in_order)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    fifth = max(len(in_order) // 5, 1)
    return {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1),
            "max": round(latencies[-1], 1),
            # Rising from the first to the last fifth = a queue building: not keeping up.
            "p50_first_fifth": round(statistics.median(in_order[:fifth]), 1),
            "p50_last_fifth": round(statistics.median(in_order[-fifth:]), 1)}  # fmt: skip


def _result(
    rate: float,
    saturated: dict[str, float],
    paced: dict[str, float],
    baseline: float,
    payload: int,
    cpu: dict[str, float],
    cpu_s: dict[str, float],
    n: int,
    load_before: float,
    messages: float,
) -> dict[str, Any]:
    ms_per_event = {stage: round(1000 * sec / n, 4) for stage, sec in cpu_s.items()}
    cores = os.cpu_count() or 1
    result = {
        "events": n,
        "events_per_s": round(rate, 1),
        "latency_ms": paced,
        "latency_at_events_per_s": round(rate * PACED_SHARE, 1),
        "saturated_latency_ms": saturated,
        "mosquitto_msgs_per_s": round(baseline, 1),
        "ratio_to_mosquitto": round(rate / baseline, 3),
        "cpu_share": cpu,
        # Net of each stage's background burn (measured for BACKGROUND_S before the run).
        "cpu_ms_per_event": ms_per_event,
        # What the stages' CPU cost would allow on a machine doing nothing else.
        "cpu_bound_events_per_s": round(cores * 1000 / sum(ms_per_event.values()), 1),
        "busiest_stage": max(cpu_s, key=cpu_s.__getitem__),
        "payload_bytes": payload,
        "batch": {
            "max_events": PUBLISH.batch,
            "linger_ms": round(PUBLISH.linger_s * 1000),
            # Saturated run, heartbeats included: how full the messages really were.
            "events_per_message": round(n / max(messages, 1), 1),
        },
        "workers": WORKERS,
        "cores": cores,
        "loadavg_before": round(load_before, 2),
        "target": TARGET,
        "meets_target": rate >= TARGET["events_per_s"] and paced["p95"] < TARGET["latency_p95_ms"],
    }
    log.info("pipeline: %s", result)
    return result


def _log_progress(stats: Any) -> None:
    log.info("published %d events (%.0f/s)", stats.sent, stats.rate)
