"""``tourpulse alerts``: run the alert engine (a stream runtime worker)."""

from __future__ import annotations

import argparse
import sys

from core.observability import ObservabilityServer
from core.settings import get_settings
from device_configs import ConfigError, load_device_configs
from device_configs.namespace import with_namespace
from stream.runtime_cli import add_runtime_args, run_until_signalled, runtime_options


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "alerts",
        help="run the alert engine (rules -> alerts in PostgreSQL -> live feed, notifications)",
        description="Consumes fused occupancy, heartbeats, availability and camera events; "
        "raises, retriggers, escalates and clears alerts. Serves /metrics and /healthz on "
        "--metrics-port.",
    )
    p.add_argument("--metrics-port", type=int, default=9104, help="/metrics and /healthz port")
    p.add_argument("--config", default=None, help="device config directory")
    # Small volumes, lowest latency: short batches, and every alert change leaves at once
    # (the 20 ms producer linger of the bulk workers was most of an alert's median delay).
    add_runtime_args(p, batch_window=0.05, producer_linger_ms=0)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stream.alerts.app import GROUP, build_runtime

    settings = get_settings()
    try:
        configs = with_namespace(
            load_device_configs(args.config or settings.device_configs),
            settings.topic_namespace,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    options = runtime_options(args, settings.kafka_topic(GROUP), offset_reset="latest")
    runtime, service = build_runtime(settings, configs, options)
    try:
        observability = ObservabilityServer(args.metrics_port, service.health).start()
    except OSError as exc:
        print(f"error: metrics port {args.metrics_port}: {exc}", file=sys.stderr)
        return 1
    try:
        return run_until_signalled(runtime)
    finally:
        observability.stop()
