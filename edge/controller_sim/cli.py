"""``tourpulse simulate controller``: a Meraki click-through network phones can "join".

Open ``http://<host>:<port>/connect/<site>`` in a (phone-sized) browser: the simulated
controller sends it to the portal's splash page exactly as Meraki would, and lets it online
when the portal redirects it to the grant URL.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import uvicorn

from core.settings import get_settings
from device_configs.loader import ConfigError, load_device_configs
from edge.camera_sim.cli import subcommand_group
from edge.controller_sim.meraki import MerakiSimulator

log = logging.getLogger(__name__)
DEFAULT_PORT = 8070


def register(sub: Any) -> None:
    kinds = subcommand_group(sub, "simulate", "simulate edge devices", "sim_kind")
    settings = get_settings()
    p = kinds.add_parser(
        "controller",
        help="a simulated Meraki click-through Wi-Fi network for the captive portal",
        description="Serve a Meraki EXCAP click-through network on HTTP: GET /connect/<site> "
        "plays a phone joining the SSID (random MAC) and redirects it to the portal's splash "
        "page; the portal's grant redirect opens the network and continues to the welcome page. "
        "The portal must allow this host as a grant host: TP_PORTAL_GRANT_HOSTS='[\"127.0.0.1\"]'.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (%(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    p.add_argument(
        "--portal-url",
        default=f"http://{settings.api_host}:{settings.api_port}",
        help="base URL of the TourPulse API serving /portal (%(default)s)",
    )
    p.add_argument(
        "--public-url",
        default=None,
        help="base URL phones reach this simulator at (default http://<host>:<port>)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        configs = load_device_configs(get_settings().device_configs)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/")
    sim = MerakiSimulator(base, args.portal_url, frozenset(s.id for s in configs.sites))
    log.info(
        "simulated Meraki network on %s for %d sites; phones join at %s/connect/<site>, "
        "splash at %s/portal/<site>",
        base,
        len(configs.sites),
        base,
        args.portal_url,
    )
    # uvicorn logs a clear error and exits 1 when the port is taken; SIGTERM stops it cleanly.
    uvicorn.run(sim.app(), host=args.host, port=args.port, log_level="warning")
    return 0
