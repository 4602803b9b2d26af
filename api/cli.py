"""``tourpulse api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from api.security import access_log
from core.settings import get_settings
from device_configs.loader import ConfigError

log = logging.getLogger(__name__)

#: Seconds uvicorn waits for open SSE streams on shutdown before closing them.
GRACEFUL_SHUTDOWN_S = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    settings = get_settings()
    parser = subparsers.add_parser(
        "api",
        help="run the HTTP API (sites, occupancy history, live SSE feed)",
        description="Serve the TourPulse API. Settings come from TP_* env vars "
        "(TP_API_HOST, TP_API_PORT, TP_KAFKA_BOOTSTRAP, DATABASE_URL, TP_TOPIC_NAMESPACE); "
        "tuning from TP_API_* (see api/config.py). Docs at /docs once running.",
    )
    parser.add_argument("--host", default=settings.api_host, help="bind address (%(default)s)")
    parser.add_argument("--port", type=int, default=settings.api_port, help="port (%(default)s)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from api.app import create_app

    try:
        app = create_app(get_settings())
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    log.info("TourPulse API on http://%s:%d (docs at /docs)", args.host, args.port)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    # After Config: it (re)configures uvicorn's loggers, which would drop an earlier filter.
    access_log.install()
    uvicorn.Server(config).run()
    return 0
