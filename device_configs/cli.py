"""``tourpulse devices validate | acl``: check a config directory; derive broker ACLs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.settings import get_settings
from device_configs.loader import ConfigError, load_device_configs


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("devices", help="device configuration tools")
    dsub = p.add_subparsers(dest="devices_cmd", required=True)
    v = dsub.add_parser("validate", help="validate sites, access points and cameras")
    v.add_argument("--config", type=Path, default=None, help="config directory")
    v.set_defaults(func=_validate)
    a = dsub.add_parser(
        "acl",
        help="generate Mosquitto password + ACL files (one MQTT user per device)",
        description=(
            "Write <out>/passwd (PBKDF2 hashes) and <out>/acl so each device may publish only "
            "under its own site/device topics and read only its own command topic."
        ),
    )
    a.add_argument("--config", type=Path, default=None, help="config directory")
    a.add_argument("--secrets", type=Path, required=True, help="secrets file (mqtt-<user> keys)")
    a.add_argument("--out", type=Path, required=True, help="directory for passwd and acl")
    a.add_argument(
        "--service",
        action="append",
        default=[],
        help="service identity ROLE=USER (repeatable): gateway=tp-gateway (reads tp/#), "
        "api=tp-api (the only writer of camera cmd topics), portal=tp-portal (funnel "
        "events); a bare USER gets the gateway role",
    )
    a.add_argument(
        "--generate-missing", action="store_true", help="create missing passwords in --secrets"
    )
    a.set_defaults(func=_acl)


def _acl(args: argparse.Namespace) -> int:
    from device_configs.acl import (
        device_users,
        passwords_for,
        render_acl,
        render_passwd,
        write_private,
    )

    directory = args.config or get_settings().device_configs
    try:
        cfg = load_device_configs(directory)
        users = device_users(cfg, args.service)
        passwords, generated = passwords_for(users, args.secrets, args.generate_missing)
    except (ConfigError, ValueError, KeyError, OSError) as exc:
        print(f"devices acl: {exc}", file=sys.stderr)
        return 1
    write_private(args.out / "passwd", render_passwd(users, passwords))
    write_private(args.out / "acl", render_acl(users))
    print(
        f"wrote {args.out / 'passwd'} and {args.out / 'acl'} for {len(users)} users"
        + (f"; generated {len(generated)} new passwords in {args.secrets}" if generated else "")
    )
    return 0


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
