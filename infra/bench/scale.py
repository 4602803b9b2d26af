"""``tourpulse bench scale``: ten times the city's peak load, sustained, on a 3-broker cluster.

The load is the capacity model's (:mod:`infra.bench.capacity`, docs/capacity.md) times
:data:`LOAD_MULTIPLE`, paced for ``--duration`` seconds (default 600) through the real edge
link (:mod:`infra.bench.edge_fleet`: MqttLink + outbox, 4 site boxes) into a private
Mosquitto, two gateways (one MQTT shared subscription), a private 3-broker KRaft cluster
(replication 3, min ISR 2, ``acks=all``), two worker services (one consumer group) and a
fresh database on the PostgreSQL server. Every port is in 31000-31999.

Reported: sustained events/s (events / first submit -> all rows stored), latency p95 per
minute and over the whole run (one event in ten), the workers' consumer lag every
:data:`LAG_EVERY_S`, CPU seconds per event per stage from /proc (each stage's own
processes: the cluster's JVMs, our database's backends), what would saturate first on this
machine, and the cores each stage would need at 100x the city (from CPU per event).
The whole pipeline shares 2 cores with the bench itself and, on a shared machine, with
other work: ``loadavg`` before and after is reported with the figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from core.kafka_client import as_kafka
from device_configs.loader import load_device_configs
from infra.bench import capacity
from infra.bench.context import BenchContext, BenchError
from infra.bench.cpu import CpuMeter, by_cmdline, only
from infra.bench.edge_fleet import EdgeFleet, city_events
from infra.bench.latency import stored_times, summarise
from infra.bench.services import fresh_database, private_mosquitto
from infra.bench.spine import Spine
from infra.stack.kafka import jars_ready
from infra.stack.kafka_cluster import start_cluster
from infra.stack.procs import ProcessId, port_open, stop_process
from infra.stack.state import StackConfig
from schemas.topics import KafkaTopic
from stream.wifi.service import GROUP as WORKER_GROUP

log = logging.getLogger(__name__)

LOAD_MULTIPLE = 10
EXTRAPOLATE_TO = 100  # the whole country, for the cores-per-stage table
DURATION_S, QUICK_DURATION_S = 600.0, 20.0
WARMUP_S, QUICK_WARMUP_S = 10.0, 2.0
IDLE_S, QUICK_IDLE_S = 20.0, 2.0  # the idle pipeline's own burn, before the load
LAG_EVERY_S, QUICK_LAG_EVERY_S = 10.0, 2.0
BROKERS = 3
BOXES = 4
MQTT_PORT = 31883
KAFKA_PORT = 31092  # brokers 31092-31094, controllers 31192-31194
METRICS_PORTS = [31201, 31202, 31203, 31204]  # gateway 1, 2; worker 1, 2
#: Processes that can use at most one core each (single-threaded, or Python's GIL).
ONE_CORE_PER_PROCESS = {"edge_link": 1, "mosquitto": 1, "gateway": 2, "worker": 2}
REPO_LIBS = Path(__file__).resolve().parents[2] / ".tourpulse" / "kafka" / "libs"
TARGET = {"load_multiple": 10, "duration_s": 600, "latency_ms_p95_max_minute": 1000}


def run(ctx: BenchContext) -> dict[str, Any]:
    duration = ctx.duration_s or (QUICK_DURATION_S if ctx.quick else DURATION_S)
    warmup = QUICK_WARMUP_S if ctx.quick else WARMUP_S
    model = capacity.summary(ctx.settings.device_configs)
    city = float(model.pop("city_load_events_per_s"))  # type: ignore[arg-type]
    rate = city * LOAD_MULTIPLE
    ns = "scale" + uuid.uuid4().hex[:6]
    work = (ctx.out_dir / "scale-run").resolve()  # logs, outboxes, the cluster's data
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load_before = os.getloadavg()[0]
    sites = [f"{ns}-{s.id}" for s in load_device_configs(ctx.settings.device_configs).sites]
    with (
        _kafka_cluster(ctx, work) as (bootstrap, kafka_pids),
        fresh_database(ctx.settings.database_url, f"tp_{ns}") as db_url,
        private_mosquitto(work, MQTT_PORT) as (mqtt_port, broker_pid),
    ):
        settings = ctx.settings.model_copy(
            update={"mqtt_host": "127.0.0.1", "mqtt_port": mqtt_port, "kafka_bootstrap": bootstrap}
        )
        fill = timedelta(minutes=20 if ctx.quick else 180)
        events = city_events(settings.device_configs, work / "keys", ns, warmup=fill)
        fleet = EdgeFleet(sites, "127.0.0.1", mqtt_port, work, boxes=BOXES)
        scoped = settings.model_copy(update={"topic_namespace": ns})
        lag = _LagSampler(
            bootstrap,
            scoped.kafka_topic(WORKER_GROUP),
            scoped.kafka_topic(KafkaTopic.WIFI_SESSION),
            QUICK_LAG_EVERY_S if ctx.quick else LAG_EVERY_S,
        )
        with Spine(
            settings, ns, db_url, work, gateways=2, workers=2, procs=1, ports=METRICS_PORTS
        ) as spine:
            fleet.start()
            log.info(
                "pipeline up; %.0f events/s for %.0f s after %.0f s warm-up", rate, duration, warmup
            )
            try:
                warm = fleet.feed(events, warmup, rate)
                spine.wait_rows(warm.submitted)
                idle = _meter(spine, broker_pid, kafka_pids)
                idle.start()  # the pipeline up and idle: what each stage burns anyway
                time.sleep(QUICK_IDLE_S if ctx.quick else IDLE_S)
                idle.stop()
                meter = _meter(spine, broker_pid, kafka_pids)
                meter.start()
                lag.start()
                measured = fleet.feed(events, duration, rate, progress=_progress)
                done = spine.wait_rows(warm.submitted + measured.submitted)
                log.info(
                    "all %d events stored %.1f s after the last",
                    measured.submitted,
                    done - measured.ended,
                )
                meter.stop()
                if fleet.queued:
                    raise BenchError(f"{fleet.queued} events still in the edge outboxes")
            finally:
                lag.stop()
                fleet.stop()
            stored = stored_times(db_url, [i for i, _ in measured.samples])
    latency, per_minute = summarise(measured.samples, stored, measured.started)
    cpu_s = dict(meter.seconds)
    cpu_s["edge_link"] = max(0.0, cpu_s["edge_link"] - measured.generate_cpu_s)
    n = measured.submitted
    elapsed = measured.ended - measured.started
    sustained = n / (done - measured.started)
    result = {
        "city_load_events_per_s": city,
        "load_multiple": LOAD_MULTIPLE,
        "offered_events_per_s": round(rate, 1),
        "duration_s": round(elapsed, 1),
        "events": n,
        # What the edge fleet managed to submit: below the offered rate when the sender
        # itself could not keep pace (a loaded machine), which the other figures inherit.
        "submitted_events_per_s": round(n / elapsed, 1),
        "sustained_events_per_s": round(sustained, 1),
        "latency_ms": latency,
        "latency_ms_p95_per_minute": per_minute,
        "latency_ms_p95_max_minute": max(per_minute),
        "max_consumer_lag": max((s["lag"] for s in lag.samples), default=0),
        "consumer_lag": lag.samples,
        "brokers": BROKERS,
        "gateways": 2,
        "workers": 2,
        "edge_boxes": BOXES,
        **_cpu_figures(cpu_s, meter.wall, n, city, idle),
        "capacity_model": model,
        "cores": os.cpu_count() or 1,
        "loadavg_before": round(load_before, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "quick": ctx.quick,
        "target": TARGET,
    }
    log.info("scale: %s", {k: v for k, v in result.items() if k != "capacity_model"})
    return result


def _cpu_figures(
    cpu_s: dict[str, float], wall: float, n: int, city: float, idle: CpuMeter
) -> dict[str, Any]:
    """CPU per event per stage, each stage's use of what it can use here, the 100x cores.

    A stage's CPU is a fixed burn (JVM housekeeping, replication and group heartbeats,
    polling loops: measured with the pipeline up and idle) plus a cost per event. Scaling
    the whole measured CPU by 100 would also multiply the fixed part, so the 100x cores are
    ``idle + marginal per event x 100 x city``; the gross per-event figure is reported too.
    """
    cores = os.cpu_count() or 1
    used = {stage: sec / wall for stage, sec in cpu_s.items()}  # cores in use at this load
    idle_cores = {s: idle.seconds.get(s, 0.0) / idle.wall for s in cpu_s}
    marginal = {s: max(0.0, cpu_s[s] - idle_cores[s] * wall) / n for s in cpu_s}
    ceiling = {s: min(cores, ONE_CORE_PER_PROCESS.get(s, cores)) for s in cpu_s}
    utilisation = {s: round(used[s] / ceiling[s], 3) for s in cpu_s}
    machine = sum(used.values()) / cores
    limits = {
        s: round(max(0.0, ceiling[s] - idle_cores[s]) / max(marginal[s], 1e-12)) for s in cpu_s
    }
    first = min(limits, key=limits.__getitem__)
    per_event = {s: sec / n for s, sec in cpu_s.items()}
    at_100x = {s: round(idle_cores[s] + marginal[s] * EXTRAPOLATE_TO * city, 2) for s in cpu_s}
    return {
        "cpu_ms_per_event": {s: round(1000 * c, 4) for s, c in per_event.items()},
        "cpu_ms_per_event_marginal": {s: round(1000 * c, 4) for s, c in marginal.items()},
        "idle_cores": {s: round(c, 3) for s, c in idle_cores.items()},
        "cores_used": {s: round(c, 3) for s, c in used.items()},
        # Share of what the stage can use on this machine (one core per Python process or
        # per Mosquitto; every core for the JVMs and PostgreSQL).
        "stage_utilisation": utilisation,
        "machine_cpu_share_pipeline": round(machine, 3),
        # The rate at which each stage would be flat out here (what it can use less its
        # idle burn, over its marginal cost per event), and the machine's 2 cores as a whole.
        "stage_limit_events_per_s": limits,
        "saturates_first": {
            "stage": first,
            "stage_limit_events_per_s": limits[first],
            "machine_limit_events_per_s": round(
                (cores - sum(idle_cores.values())) / max(sum(marginal.values()), 1e-12)
            ),
        },
        "extrapolation_100x": {
            "events_per_s": round(EXTRAPOLATE_TO * city, 1),
            "cores": at_100x,
            "cores_total": round(sum(at_100x.values()), 2),
            "cores_at_60pct": {s: math.ceil(c / 0.6) for s, c in at_100x.items()},
        },
    }


@contextlib.contextmanager
def _kafka_cluster(ctx: BenchContext, work: Path) -> Iterator[tuple[str, set[int]]]:
    """A private 3-broker KRaft cluster on 31092-31094; yields (bootstrap, node pids)."""
    java = shutil.which("java")
    # The stack's jar cache, else the checkout's (``make kafka-jars``) when the data
    # directory is elsewhere (tests).
    candidates = [StackConfig.from_settings(ctx.settings).libs_dir, REPO_LIBS]
    libs = next((c for c in candidates if jars_ready(c)), candidates[0])
    if java is None or not jars_ready(libs):
        raise BenchError(f"needs java and the Kafka jars in {libs} (make kafka-jars)")
    busy = [p for p in range(KAFKA_PORT, KAFKA_PORT + BROKERS) if port_open("127.0.0.1", p)]
    if busy or port_open("127.0.0.1", MQTT_PORT):
        raise BenchError(f"ports {busy or MQTT_PORT} are in use: another scale run?")
    cfg = StackConfig(data_dir=work / "kafka", kafka_port=KAFKA_PORT, kafka_brokers=BROKERS)
    comp = start_cluster(cfg, java, libs, BROKERS, log.info)
    home = cfg.data_dir / "kafka-cluster"
    nodes = [ProcessId(int(p), int(t)) for p, t in json.loads((home / "nodes.json").read_text())]
    try:
        yield comp.address, {node.pid for node in nodes}
    finally:
        # Throwaway data: kill all at once. Stopped one by one, the last node's controlled
        # shutdown waits for a controller quorum that is gone (~40 s of nothing).
        for node in nodes:
            stop_process(node, signal.SIGKILL)


def _meter(spine: Spine, broker_pid: int, kafka_pids: set[int]) -> CpuMeter:
    return CpuMeter(
        {
            "edge_link": only(os.getpid()),
            "mosquitto": {broker_pid},
            "gateway": spine.gateway_pids(),
            "kafka": kafka_pids,
            "worker": spine.worker_pids(),
            "postgres": by_cmdline(f" tp_{spine.ns} "),  # our database's backends
        }
    )


class _LagSampler:
    """The workers' consumer lag (end offsets - committed offsets), sampled in a thread."""

    def __init__(self, bootstrap: str, group: str, topic: str, every_s: float) -> None:
        self.topic, self.every_s = topic, every_s
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            as_kafka(bootstrap).librdkafka(**{"group.id": group, "enable.auto.commit": False})
        )
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        self._consumer.close()

    def lag(self) -> int:
        meta = self._consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        parts = [TopicPartition(self.topic, p) for p in meta.partitions]
        total = 0
        for tp in self._consumer.committed(parts, timeout=10):
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            total += max(0, high - (tp.offset if tp.offset >= 0 else low))
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                lag = self.lag()
            except Exception as exc:  # a sample lost to a slow broker is not a failed run
                log.warning("consumer lag not sampled: %s", exc)
                continue
            self.samples.append({"t_s": round(time.monotonic() - self._t0, 1), "lag": lag})


def _progress(submitted: int, elapsed: float) -> None:
    log.info("submitted %d events in %.0f s (%.0f/s)", submitted, elapsed, submitted / elapsed)
