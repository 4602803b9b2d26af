"""``tourpulse alerts``: run the alert engine (a Faust worker)."""

from __future__ import annotations

import argparse
import sys

import faust

from device_configs import ConfigError, load_device_configs
from device_configs.namespace import with_namespace
from infra.observability import ObservabilityServer
from infra.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "alerts",
        help="run the alert engine (rules -> alerts in PostgreSQL -> live feed, notifications)",
        description="Consumes fused occupancy, heartbeats, availability and camera events; "
        "raises, retriggers, escalates and clears alerts. Serves /metrics and /healthz on "
        "--metrics-port.",
    )
    p.add_argument("--web-port", type=int, default=6067, help="Faust web port (default 6067)")
    p.add_argument("--metrics-port", type=int, default=9104, help="/metrics and /healthz port")
    p.add_argument("--config", default=None, help="device config directory")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stream.alerts.app import build_app

    settings = get_settings()
    try:
        configs = with_namespace(
            load_device_configs(args.config or settings.device_configs),
            settings.topic_namespace,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    app, service = build_app(settings, configs, web_port=args.web_port)
    observability = ObservabilityServer(args.metrics_port, service.health).start()
    try:
        faust.Worker(app, loglevel="INFO").execute_from_commandline()
    finally:
        observability.stop()
    return 0
