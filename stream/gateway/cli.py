"""``tourpulse gateway``: run the MQTT -> Kafka ingest gateway until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
import time
from types import FrameType
from typing import Any

from confluent_kafka import KafkaException

from core.gc_tuning import tune_for_streaming
from core.settings import Settings, get_settings
from device_configs import ConfigError, load_device_configs
from stream.gateway.config import GatewayConfig
from stream.gateway.gateway import Gateway

log = logging.getLogger("tourpulse.gateway")


def register(subparsers: Any) -> None:
    defaults = GatewayConfig(client_id="")
    p = subparsers.add_parser(
        "gateway",
        help="forward device events from MQTT to Kafka (validated, at least once)",
        description="Subscribe to every TourPulse MQTT event stream (MQTT 5 shared "
        "subscription, QoS 1), validate each message against the event contract, stamp "
        "ingest_time and produce it to Kafka keyed by site; invalid messages go to the "
        "dead-letter topic. Brokers come from TP_MQTT_HOST/TP_MQTT_PORT/TP_KAFKA_BOOTSTRAP.",
    )
    p.add_argument(
        "--client-id",
        default=f"tp-gateway-{socket.gethostname()}",
        help="MQTT client id; keep it stable across restarts so the broker's "
        "queued session is resumed (default: %(default)s)",
    )
    p.add_argument(
        "--share-group",
        default=defaults.share_group,
        help="MQTT shared-subscription group; gateways in one group split the "
        "load (default: %(default)s)",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=defaults.partitions,
        help="partitions for Kafka topics created at start-up (default: %(default)s)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=9102,
        help="loopback port for /metrics and /healthz, 0 = any (default: %(default)s)",
    )
    p.add_argument(
        "--session-expiry",
        type=int,
        default=defaults.session_expiry_s,
        help="seconds the broker queues messages while this gateway is away (default: %(default)s)",
    )
    p.add_argument(
        "--receive-maximum",
        type=int,
        default=defaults.receive_maximum,
        help="unacknowledged MQTT messages in flight (default: %(default)s)",
    )
    p.add_argument(
        "--site",
        default=None,
        help="only forward this site's topics, which need not be in the device configs "
        "(default: every site listed in TP_DEVICE_CONFIGS; others are dead-lettered)",
    )
    p.add_argument(
        "--stats-every",
        type=float,
        default=10.0,
        help="seconds between progress lines, 0 = none (default: %(default)s)",
    )
    p.set_defaults(func=run)


def _configured_sites(settings: Settings) -> frozenset[str]:
    """Site ids of the device configs: events for any other site are dead-lettered.

    An isolated deployment (``TP_TOPIC_NAMESPACE``: benchmarks, tests) also owns the same
    sites prefixed ``<namespace>-``, as ``simulate wifi --site-prefix`` publishes them.
    """
    try:
        ids = {s.id for s in load_device_configs(settings.device_configs).sites}
    except ConfigError as exc:
        raise SystemExit(f"error: device configs {settings.device_configs}: {exc}") from exc
    ns = settings.topic_namespace
    return frozenset(ids | {f"{ns}-{i}" for i in ids}) if ns else frozenset(ids)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    config = GatewayConfig(
        client_id=args.client_id,
        share_group=args.share_group,
        partitions=args.partitions,
        session_expiry_s=args.session_expiry,
        receive_maximum=args.receive_maximum,
        metrics_port=args.metrics_port,
        site=args.site,
        known_sites=frozenset({args.site}) if args.site else _configured_sites(settings),
    )
    gateway = Gateway(settings, config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: draining and stopping", signal.Signals(signum).name)
        stop.set()
        gateway.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    tune_for_streaming()
    try:
        gateway.start()
    except OSError as exc:
        log.error("cannot serve metrics on port %s: %s", args.metrics_port, exc)
        return 2
    except KafkaException as exc:
        gateway.stop(timeout=1)
        if stop.is_set():
            return 0
        log.error("cannot prepare Kafka topics: %s", exc)
        return 1
    _report_until(stop, gateway, args.stats_every)
    gateway.stop()
    log.info("final totals: %s", _totals(gateway))
    return 0


def _report_until(stop: threading.Event, gateway: Gateway, every: float) -> None:
    """Log one progress line every ``every`` seconds until ``stop`` is set."""
    last_t, last_fwd = time.monotonic(), 0.0
    while not stop.wait(every if every > 0 else None):
        now, fwd = time.monotonic(), gateway.metrics.value("tp_gateway_forwarded_total")
        log.info(
            "%s (%.0f/s), health %s",
            _totals(gateway),
            (fwd - last_fwd) / max(now - last_t, 1e-9),
            "ok" if gateway.health().ok else "UNHEALTHY",
        )
        last_t, last_fwd = now, fwd


def _totals(gateway: Gateway) -> str:
    m = gateway.metrics
    dead = sum(
        s.value
        for metric in m.dead_lettered.collect()
        for s in metric.samples
        if s.name.endswith("_total")
    )
    return (
        f"received {m.value('tp_gateway_received_total'):.0f}, "
        f"forwarded {m.value('tp_gateway_forwarded_total'):.0f}, "
        f"dead-lettered {dead:.0f}, in flight {gateway.in_flight}"
    )
