"""``tourpulse devices validate``: check a config directory before deploying it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from device_configs.loader import ConfigError, load_device_configs
from infra.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("devices", help="device configuration tools")
    dsub = p.add_subparsers(dest="devices_cmd", required=True)
    v = dsub.add_parser("validate", help="validate sites, access points and cameras")
    v.add_argument("--config", type=Path, default=None, help="config directory")
    v.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    directory = args.config or get_settings().device_configs
    try:
        cfg = load_device_configs(directory)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{directory}: ok ({len(cfg.sites)} sites, {len(cfg.access_points)} access points, "
        f"{len(cfg.cameras)} cameras)"
    )
    return 0
