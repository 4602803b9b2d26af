"""``tourpulse simulate wifi``: realistic Wi-Fi sessions for the configured sites over MQTT."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from core.gc_tuning import tune_for_streaming
from core.settings import Settings, get_settings
from device_configs.loader import ConfigError, load_device_configs
from device_configs.models import DeviceConfigs
from edge.simulator.generator import SimConfig, WifiSessionGenerator
from edge.simulator.identity import SimulatedClockPseudonymiser
from edge.simulator.publisher import BrokerUnreachable, SimPublisher
from edge.simulator.site_link import PublishOptions, PublishStats
from schemas.batch import MAX_BATCH_EVENTS

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def register(sub: Any) -> None:
    sim = sub.add_parser("simulate", help="simulate edge devices (publishes over MQTT)")
    kinds = sim.add_subparsers(dest="sim_kind", required=True, metavar="KIND")
    p = kinds.add_parser(
        "wifi",
        help="Wi-Fi session events for the configured sites",
        description="Publish Wi-Fi session start/interim/stop events like the sites' edge "
        "agents would: diurnal visitor curves, dwell times per venue, roaming, randomised "
        "MACs, heartbeats and availability. Deterministic for a given --seed and --start.",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="simulated seconds per real second (default 1; with --events: as fast as possible)",
    )
    p.add_argument(
        "--events", type=int, default=None, help="publish this many session events, then exit"
    )
    p.add_argument("--rate", type=float, default=None, help="cap on session events per second")
    p.add_argument(
        "--duration",
        type=_duration,
        default=None,
        help="stop after this much real time: 90, 90s, 15m, 2h",
    )
    p.add_argument("--sites", default=None, help="comma-separated site ids (default: all)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--start",
        type=_start_time,
        default=None,
        help="simulated start time, ISO 8601 (default: now)",
    )
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply visitor arrival rates (default 1.0)"
    )
    p.add_argument(
        "--surge",
        type=_surge,
        action="append",
        default=[],
        metavar="SITE=FACTOR",
        help="extra arrivals at SITE, FACTOR x its busiest-hour rate at any hour "
        "(a festival, tour buses); repeatable",
    )
    p.add_argument(
        "--warmup",
        type=_duration,
        default=timedelta(hours=3).total_seconds(),
        help="simulate this long before --start without publishing, so sites are "
        "not empty at the start (default 3h; 0 to disable)",
    )
    p.add_argument(
        "--interim", type=_duration, default=300.0, help="interim update interval (default 5m)"
    )
    p.add_argument(
        "--site-prefix",
        default="",
        help="publish site ids as <prefix>-<site> (isolated test namespaces)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=2000,
        help="most unacknowledged QoS 1 messages at once (default 2000)",
    )
    p.add_argument(
        "--batch",
        type=_batch_size,
        default=100,
        help=f"most session events per MQTT message, 1..{MAX_BATCH_EVENTS} (default 100; "
        "1 sends every event on its own)",
    )
    p.add_argument(
        "--linger-ms",
        type=float,
        default=50.0,
        help="longest a session event waits for more of its device's to share a message "
        "(default 50; a device quiet for that long sends at once)",
    )
    p.set_defaults(func=run)


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BATCH_EVENTS:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_BATCH_EVENTS}, got {text!r}")
    return value


def _surge(text: str) -> tuple[str, float]:
    site, sep, factor = text.partition("=")
    try:
        value = float(factor)
    except ValueError:
        value = 0.0
    if not sep or not site or value <= 0:
        raise argparse.ArgumentTypeError(f"expected SITE=FACTOR with FACTOR > 0, got {text!r}")
    return site, value


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        configs = _select_sites(load_device_configs(settings.device_configs), args.sites)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unknown = sorted(set(dict(args.surge)) - {s.id for s in configs.sites})
    if unknown:
        print(f"error: --surge for unknown site(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    start = args.start or datetime.now(UTC)
    sim = SimConfig(
        start=start,
        seed=args.seed,
        scale=args.scale,
        surges=dict(args.surge),
        interim_s=args.interim,
        warmup=timedelta(seconds=args.warmup),
        site_prefix=args.site_prefix,
    )
    generator = WifiSessionGenerator(configs, sim, SimulatedClockPseudonymiser(settings.data_dir))
    speed = args.speed if args.speed is not None else (None if args.events else 1.0)
    publisher = SimPublisher(
        generator.capacity().keys(), _publish_options(settings, args, speed), _print_progress
    )
    stop_on_signal(publisher)
    tune_for_streaming()
    try:
        publisher.connect(start)
    except BrokerUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"simulating {len(configs.sites)} sites from {start.isoformat()} "
        f"(speed {'max' if speed is None else speed}, seed {args.seed}) -> "
        f"mqtt://{settings.mqtt_host}:{settings.mqtt_port}",
        file=sys.stderr,
    )
    try:
        stats = publisher.run(generator)
    except BrokerUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        publisher.close(graceful=False)
        return 1
    publisher.close()
    _print_progress(stats, final=True)
    return 0


def stop_on_signal(publisher: SimPublisher) -> None:
    """SIGTERM/SIGINT end the run cleanly: drain in-flight messages, say offline."""

    def handler(_signum: int, _frame: object) -> None:
        publisher.stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _publish_options(
    settings: Settings, args: argparse.Namespace, speed: float | None
) -> PublishOptions:
    return PublishOptions(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        tls_ca=str(settings.mqtt_tls_ca) if settings.mqtt_tls_ca else None,
        speed=speed,
        rate=args.rate,
        max_events=args.events,
        duration_s=args.duration,
        window=args.window,
        batch=args.batch,
        linger_s=max(args.linger_ms, 0.0) / 1000,
    )


def _select_sites(configs: DeviceConfigs, sites: str | None) -> DeviceConfigs:
    if not sites:
        return configs
    wanted = [s.strip() for s in sites.split(",") if s.strip()]
    known = {s.id for s in configs.sites}
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ValueError(f"unknown site(s): {', '.join(unknown)} (known: {', '.join(known)})")
    return configs.model_copy(update={"sites": [s for s in configs.sites if s.id in wanted]})


def _print_progress(stats: PublishStats, final: bool = False) -> None:
    sim = stats.sim_time.isoformat(timespec="seconds") if stats.sim_time else "-"
    label = "done" if final else "progress"
    print(
        f"{label}: {stats.sent} session events ({stats.rate:,.0f}/s), "
        f"{stats.heartbeats} heartbeats, {stats.acked} acked, {stats.failed} rejected, "
        f"{stats.not_delivered} re-sent (not delivered), "
        f"simulated time {sim}",
        file=sys.stderr,
        flush=True,
    )


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90, 90s, 15m, 2h)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def _start_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
