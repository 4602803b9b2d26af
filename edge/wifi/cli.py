"""``tourpulse edge wifi --config <file>``: run the Wi-Fi edge agent at a site.

Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for a bad config or device configs,
3 when a listening port cannot be bound (e.g. 514/1813 without root).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from core.gc_tuning import tune_for_streaming
from device_configs.loader import ConfigError


def edge_group(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """The ``tourpulse edge`` subcommand group, created once and shared by every edge agent
    module (wifi, camera...) whatever order they register in."""
    existing = sub.choices.get("edge")
    if existing is None:
        existing = sub.add_parser("edge", help="run an edge agent (wifi, ...)")
        existing.add_subparsers(dest="edge_cmd", required=True, metavar="AGENT")
    for action in existing._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the 'edge' command has no subcommands")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = edge_group(sub).add_parser(
        "wifi",
        help="Wi-Fi edge agent: RADIUS accounting, hostapd syslog, Meraki scanning -> MQTT",
        description=(
            "Receive RADIUS accounting, hostapd syslog lines and Meraki Scanning API posts, "
            "pseudonymise client MACs with the daily key, and publish contract events to "
            "MQTT through the durable outbox. Serves /metrics and /healthz."
        ),
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="agent config file (YAML)")
    p.add_argument(
        "--check", action="store_true", help="validate the config and device configs, then exit"
    )


def run(args: argparse.Namespace) -> int:
    from edge.wifi.agent import WifiAgent
    from edge.wifi.config import load_config

    try:
        cfg = load_config(args.config)
        agent = WifiAgent(cfg)
    except (ValueError, KeyError, ConfigError, PermissionError, FileNotFoundError) as exc:
        print(f"edge wifi: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(
            f"{args.config}: ok (device {cfg.device}, sites {sorted(cfg.served_sites())}, "
            f"{len(agent.inventory.aps)} APs, {len(agent.inventory.nas_by_ip)} RADIUS clients, "
            f"sources {[a.name for a in agent.adapters]})"
        )
        if agent.link:
            agent.link.outbox.close()
        return 0
    tune_for_streaming()
    try:
        asyncio.run(agent.run_forever())
    except OSError as exc:
        print(f"edge wifi: cannot listen: {exc}", file=sys.stderr)
        return 3
    return 0
