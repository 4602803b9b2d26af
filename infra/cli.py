"""The ``tourpulse`` command: one entry point, subcommands registered by each package.

Each module listed in :data:`COMMAND_MODULES` exposes ``register(subparsers)`` and sets a
``func`` returning the exit code, so adding a command touches only its own module and
one line here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "schemas.export",
    "device_configs.cli",
    "stream.storage.cli",
    "stream.cli",
    "stream.gateway.cli",
    "stream.alerts.cli",
    "infra.demo",
    "api.cli",
    "infra.stack.cli",
    "edge.simulator.cli",
    "infra.bench.cli",
    "edge.camera_sim.cli",
    "edge.wifi.cli",
    "stream.flows.cli",
    "edge.camera.cli",
    "api.ioc.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tourpulse",
        description="TourPulse: real-time smart-tourism backbone (edge, stream, api).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
