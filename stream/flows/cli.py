"""``tourpulse flows``: visitor flows, fused occupancy and retention in one Faust worker."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta

import faust

from device_configs import ConfigError, load_device_configs
from device_configs.namespace import with_namespace
from infra.observability import ObservabilityServer
from infra.settings import get_settings
from stream.flows.app import FlowsOptions, build_app
from stream.flows.sink import FlowsConfig
from stream.fusion.model import FusionParams
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
    p.add_argument("--min-count", type=int, default=10,
                   help="k: OD cells below this many clients are never published")  # fmt: skip
    p.add_argument("--lateness", type=float, default=7200.0,
                   help="seconds after an hour's end that late events may correct it")  # fmt: skip
    p.add_argument("--session-timeout", type=float, default=900.0,
                   help="seconds after a client's last event when a session without stop "
                        "ends (same for every worker of one database)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=2000, help="max events per transaction")
    p.add_argument("--batch-window", type=float, default=0.5, help="max seconds to fill a batch")
    p.add_argument("--recompute-interval", type=float, default=5.0,
                   help="seconds between recomputes of dirty hours (debounce)")  # fmt: skip
    p.add_argument("--retention-interval", type=float, default=3600.0,
                   help="seconds between retention runs")  # fmt: skip
    p.add_argument("--no-retention", action="store_true", help="do not run retention")
    p.add_argument("--no-fusion", action="store_true", help="do not run fused occupancy")
    p.add_argument("--camera-stale", type=float, default=30.0,
                   help="seconds without camera metadata before a camera is stale")  # fmt: skip
    p.add_argument("--wifi-stale", type=float, default=120.0,
                   help="seconds without a Wi-Fi update before Wi-Fi is stale")  # fmt: skip
    p.add_argument("--rebalance-timeout", type=float, default=20.0, help="Kafka group, seconds")
    p.add_argument("--group-session-timeout", type=float, default=30.0,
                   help="seconds before Kafka evicts a dead worker")  # fmt: skip
    p.add_argument("--heartbeat-interval", type=float, default=3.0, help="Kafka group, seconds")
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.min_count < 1 or args.lateness < 0 or args.session_timeout <= 0:
        print("error: --min-count must be >= 1, --lateness >= 0, --session-timeout > 0",
              file=sys.stderr)  # fmt: skip
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
        batch_size=args.batch_size,
        batch_window=args.batch_window,
        recompute_interval=args.recompute_interval,
        retention_interval=args.retention_interval,
        retention=None if args.no_retention else RetentionPolicy(),
        rebalance_timeout=args.rebalance_timeout,
        group_session_timeout=args.group_session_timeout,
        heartbeat_interval=args.heartbeat_interval,
    )
    app, service = build_app(settings, configs, options)
    server = ObservabilityServer(args.metrics_port, health=service.health)
    try:
        server.start()
    except OSError as exc:
        print(f"error: metrics port {args.metrics_port}: {exc}", file=sys.stderr)
        return 1
    log.info("flows worker: group %s", app.conf.id)
    worker = faust.Worker(app, loglevel="DEBUG" if args.verbose else "INFO",
                          redirect_stdouts=False)  # fmt: skip
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        server.stop()
    return 0
