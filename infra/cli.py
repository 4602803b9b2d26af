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

#: Top-level command -> the modules that register it. Only the modules of the command
#: being run are imported (some pull in OpenCV, aiortc or Kafka clients, seconds of start-up);
#: ``--help`` and unknown commands import them all.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "schemas": ("schemas.export",),
    "devices": ("device_configs.cli",),
    "stack": ("infra.stack.cli",),
    "db": ("stream.storage.cli",),
    "gateway": ("stream.gateway.cli",),
    "worker": ("stream.cli",),
    "flows": ("stream.flows.cli",),
    "alerts": ("stream.alerts.cli",),
    "api": ("api.cli",),
    "users": ("api.ioc.cli",),
    "edge": ("edge.wifi.cli", "edge.camera.cli"),
    "camera": ("edge.camera.calibrate_cli",),
    "simulate": ("edge.simulator.cli", "edge.camera_sim.cli", "edge.controller_sim.cli"),
    "demo": ("infra.demo",),
    "bench": ("infra.bench.cli",),
    "preflight": ("infra.preflight",),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone when it is known, else for every command."""
    parser = argparse.ArgumentParser(
        prog="tourpulse",
        description="TourPulse: real-time smart-tourism backbone (edge, stream, api).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for modules in wanted:
        for name in modules:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,  # a library may have configured logging at import time
    )
    from infra.preflight import InsecureConfig, enforce_at_startup

    try:
        enforce_at_startup(command)
    except InsecureConfig as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
