"""``tourpulse flows``: visitor flows, fused occupancy and retention in one worker."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta

from core.observability import ObservabilityServer
from core.settings import get_settings
from device_configs import ConfigError, load_device_configs
from device_configs.namespace import with_namespace
from stream.flows.app import GROUP, FlowsOptions, build_runtime
from stream.flows.sink import FlowsConfig
from stream.fusion.model import FusionParams
from stream.runtime_cli import add_runtime_args, run_until_signalled, runtime_options
from stream.storage import migrate
from stream.storage.retention import RetentionPolicy

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "flows",
        help="run the flows worker (unique visitors, dwell, OD matrix, fused occupancy)",
        description=__doc__ + " Serves /metrics and /healthz on --metrics-port.",
    )
    p.add_argument("--metrics-port", type=int, default=9105, help="/metrics port (0: any)")
    p.add_argument("--config", default=None, help="device config directory")
    p.add_argument(
        "--min-count",
        type=int,
        default=10,
        help="k: OD cells below this many clients are never published",
    )
    p.add_argument(
        "--lateness",
        type=float,
        default=7200.0,
        help="seconds after an hour's end that late events may correct it",
    )
    p.add_argument(
        "--session-timeout",
        type=float,
        default=900.0,
        help="seconds after a client's last event when a session without stop "
        "ends (same for every worker of one database)",
    )
    p.add_argument(
        "--recompute-interval",
        type=float,
        default=5.0,
        help="seconds between recomputes of dirty hours (debounce)",
    )
    p.add_argument(
        "--retention-interval", type=float, default=3600.0, help="seconds between retention runs"
    )
    p.add_argument("--no-retention", action="store_true", help="do not run retention")
    p.add_argument("--no-fusion", action="store_true", help="do not run fused occupancy")
    p.add_argument(
        "--camera-stale",
        type=float,
        default=30.0,
        help="seconds without camera metadata before a camera is stale",
    )
    p.add_argument(
        "--wifi-stale",
        type=float,
        default=120.0,
        help="seconds without a Wi-Fi update before Wi-Fi is stale",
    )
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    add_runtime_args(
        p,
        batch_window=0.5,
        rebalance_timeout=20.0,
        group_session_timeout=30.0,
        heartbeat_interval=3.0,
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.min_count < 1 or args.lateness < 0 or args.session_timeout <= 0:
        print(
            "error: --min-count must be >= 1, --lateness >= 0, --session-timeout > 0",
            file=sys.stderr,
        )
        return 2
    settings = get_settings()
    try:
        configs = with_namespace(
            load_device_configs(args.config or settings.device_configs),
            settings.topic_namespace,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not args.no_migrate:
        try:
            migrate.apply(settings.database_url)
        except Exception as exc:
            print(f"error: cannot migrate {settings.database_url}: {exc}", file=sys.stderr)
            return 1
    options = FlowsOptions(
        flows=FlowsConfig(
            session_timeout=timedelta(seconds=args.session_timeout),
            lateness=timedelta(seconds=args.lateness),
            min_count=args.min_count,
        ),
        fusion=FusionParams(camera_stale_s=args.camera_stale, wifi_stale_s=args.wifi_stale),
        with_fusion=not args.no_fusion,
        recompute_interval=args.recompute_interval,
        retention_interval=args.retention_interval,
        retention=None if args.no_retention else RetentionPolicy(),
    )
    runtime, service = build_runtime(
        settings, configs, options, runtime_options(args, settings.kafka_topic(GROUP))
    )
    server = ObservabilityServer(args.metrics_port, health=service.health)
    try:
        server.start()
    except OSError as exc:
        print(f"error: metrics port {args.metrics_port}: {exc}", file=sys.stderr)
        return 1
    log.info("flows worker: group %s", runtime.options.group_id)
    try:
        return run_until_signalled(runtime)
    finally:
        server.stop()
