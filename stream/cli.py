"""``tourpulse worker``: run the stream worker, one process per core.

``--workers N`` starts N worker processes in the same consumer group (Kafka splits the
topic's partitions among them, so N should not exceed the partition count; 4 by default).
Each child serves /metrics and /healthz on ``--metrics-port`` + its index.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from datetime import timedelta

from core.observability import Health, ObservabilityServer
from core.settings import get_settings
from schemas.topics import KafkaTopic
from stream.runtime_cli import (
    RUNTIME_ARGS,
    add_runtime_args,
    run_until_signalled,
    runtime_options,
)
from stream.storage import migrate
from stream.wifi.processor import OccupancyProcessor, ProcessorConfig
from stream.wifi.service import GROUP, build_runtime
from stream.wifi.sink import RAW_WRITERS

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "worker",
        help="run the stream worker (Wi-Fi occupancy -> PostgreSQL + live topic)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workers", type=int, default=1, help="processes to run (one per core)")
    p.add_argument("--metrics-port", type=int, default=9110, help="first /metrics port (0: any)")
    p.add_argument(
        "--session-timeout",
        type=float,
        default=900.0,
        help="seconds after a client's last event when a session without stop ends "
        "(must be the same for every worker of one database)",
    )
    p.add_argument(
        "--close-interval",
        type=float,
        default=10.0,
        help="seconds between closing minutes of sites without events",
    )
    p.add_argument(
        "--live-interval",
        type=float,
        default=1.0,
        help="min seconds between live updates of one site",
    )
    p.add_argument(
        "--rollup-interval",
        type=float,
        default=5.0,
        help="min seconds between recomputing a worker's queued minute rollups "
        "(0: after every batch; each recompute counts every connected client; "
        "live counts follow --live-interval)",
    )
    p.add_argument(
        "--raw-writer",
        choices=RAW_WRITERS,
        default="unnest",
        help="how raw events are inserted (unnest measured faster)",
    )
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    add_runtime_args(p, batch_window=0.1, batch_min_bytes=256 * 1024)
    p.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    settings = get_settings()
    if not args.no_migrate:
        try:
            applied = migrate.apply(settings.database_url)
        except Exception as exc:
            print(f"error: cannot migrate {settings.database_url}: {exc}", file=sys.stderr)
            return 1
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
    if args.workers > 1:
        return _supervise(args)
    return _run_one(args)


def _run_one(args: argparse.Namespace) -> int:
    settings = get_settings()
    config = ProcessorConfig(
        database_url=settings.database_url,
        source_topic=settings.kafka_topic(KafkaTopic.WIFI_SESSION),
        session_timeout=timedelta(seconds=args.session_timeout),
        live_interval=args.live_interval,
        raw_writer=args.raw_writer,
        rollup_interval=args.rollup_interval,
    )
    runtime, processor = build_runtime(
        settings.kafka_client_settings(),
        runtime_options(args, settings.kafka_topic(GROUP)),
        config,
        live_topic=settings.kafka_topic(KafkaTopic.OCCUPANCY_LIVE),
        dead_topic=settings.kafka_topic(KafkaTopic.DEAD_LETTER),
        close_interval=args.close_interval,
    )
    server = ObservabilityServer(args.metrics_port, health=lambda: _health(processor))
    try:
        server.start()
    except OSError as exc:
        print(f"error: metrics port {args.metrics_port}: {exc}", file=sys.stderr)
        return 1
    try:
        return run_until_signalled(runtime)
    finally:
        server.stop()


def _health(processor: OccupancyProcessor) -> Health:
    last = processor.last_batch_at
    return Health(
        processor.db_ok,
        {
            "database": "ok" if processor.db_ok else "failing (retrying)",
            "last_batch_at": last.isoformat() if last else None,
        },
    )


def _supervise(args: argparse.Namespace) -> int:
    """Run ``--workers`` children; stop all when one dies or on SIGTERM/SIGINT."""
    children: list[subprocess.Popen[bytes]] = []
    for i in range(args.workers):
        argv = [
            sys.executable,
            "-m",
            "infra.cli",
            *(["--verbose"] if args.verbose else []),
            "worker",
            "--workers",
            "1",
            "--no-migrate",
            "--metrics-port",
            str(args.metrics_port + i if args.metrics_port else 0),
        ]
        argv += _forwarded(args)
        if args.instance_id:
            argv += ["--instance-id", f"{args.instance_id}-{i}"]
        children.append(subprocess.Popen(argv))
        print(f"started worker {i + 1}/{args.workers} (pid {children[-1].pid})", flush=True)

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while any(c.poll() is None for c in children):
        dead = [c for c in children if c.poll() not in (None, 0)]
        if dead and code == 0:
            code = dead[0].returncode or 1
            print(
                f"worker pid {dead[0].pid} exited with {code}; stopping the others", file=sys.stderr
            )
            stop(signal.SIGTERM, None)
        time.sleep(0.5)
    return code


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The per-process options, passed on unchanged to every child."""
    names = (
        *RUNTIME_ARGS,
        "session_timeout",
        "close_interval",
        "live_interval",
        "rollup_interval",
        "raw_writer",
    )
    out: list[str] = []
    for name in names:
        out += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return out
