"""``tourpulse preflight``: refuse a production configuration with weak or default secrets.

Every check runs and every problem is listed at once (fixing one secret per restart is how
a city ends up going live with the rest still default). The same checks run at start-up
of every service when ``TP_ENVIRONMENT=production`` (or ``TP_IOC_ENVIRONMENT=production``),
so a service never serves with a configuration the preflight would have refused.

Values come from the environment (and, for RADIUS secrets, the deployment's secrets file),
named exactly as the services read them, so the check sees what the services will see.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from core.settings import DEVICE_CONFIG_DIR
from device_configs.loader import ConfigError, load_device_configs
from device_configs.models import DeviceConfigs
from device_configs.wifi import load_secrets

#: Signing and sealing keys, admin/operator bearer tokens (>= 256 bits of text).
MIN_KEY_LEN = 32
#: Shared secrets typed into devices (RADIUS: RFC 2865 asks for >= 16 octets) and
#: service passwords (MQTT, Kafka SASL, ONVIF, database).
MIN_SHARED_LEN = 16
#: Values from tutorials, demos and our own defaults: never accepted, whatever their length.
KNOWN_DEFAULTS = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "password",
        "admin",
        "dev",
        "development",
        "tourpulse",
        "tourpulse-demo",
        "tourpulse-demo-operator",
        "testing123",  # FreeRADIUS' example client secret
    }
)
PRODUCTION = "production"

Env = Mapping[str, str]


class InsecureConfig(RuntimeError):
    """A production service refuses to start: the message lists every problem."""


@dataclass(frozen=True)
class Problem:
    check: str
    message: str


@dataclass
class Report:
    checks: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"  - [{p.check}] {p.message}" for p in self.problems]
        head = f"preflight: {len(self.checks)} checks, {len(self.problems)} problems"
        return "\n".join([head, *lines])


@dataclass(frozen=True)
class Context:
    env: Env
    device_configs: Path
    secrets_file: Path | None


def _weak(value: str | None, minimum: int) -> str | None:
    """Why ``value`` is not an acceptable secret, or None if it is."""
    if not value:
        return "not set"
    if value.strip().lower() in KNOWN_DEFAULTS or "demo" in value.lower():
        return "a known default/demo value"
    if len(value) < minimum:
        return f"shorter than {minimum} characters"
    if len(set(value)) < 6:
        return "too little variety (fewer than 6 distinct characters)"
    return None


def _secret(ctx: Context, name: str, minimum: int = MIN_KEY_LEN) -> list[str]:
    why = _weak(ctx.env.get(name), minimum)
    return [f"{name} is {why}"] if why else []


def check_ioc_jwt_secret(ctx: Context) -> list[str]:
    return _secret(ctx, "TP_IOC_JWT_SECRET")


def check_portal_secret(ctx: Context) -> list[str]:
    # Unset means a random key per process: sealed visits and CSRF tokens then break on
    # every restart and differ between replicas, so production must configure one.
    return _secret(ctx, "TP_PORTAL_SECRET")


def check_portal_admin_tokens(ctx: Context) -> list[str]:
    raw = ctx.env.get("TP_PORTAL_ADMIN_TOKENS")
    if not raw:
        return []  # no admin API access at all
    try:
        tokens = json.loads(raw)
    except json.JSONDecodeError:
        return ['TP_PORTAL_ADMIN_TOKENS is not a JSON object {"actor": "token"}']
    if not isinstance(tokens, dict):
        return ['TP_PORTAL_ADMIN_TOKENS is not a JSON object {"actor": "token"}']
    out = []
    for actor, token in sorted(tokens.items()):
        why = _weak(token if isinstance(token, str) else None, MIN_KEY_LEN)
        if why:
            out.append(f"admin token of {actor!r} is {why}")
    return out


def check_opennds_faskey(ctx: Context) -> list[str]:
    if "TP_PORTAL_OPENNDS_FASKEY" not in ctx.env:
        return []
    return _secret(ctx, "TP_PORTAL_OPENNDS_FASKEY")


def check_unifi(ctx: Context) -> list[str]:
    if not ctx.env.get("TP_PORTAL_UNIFI_URL"):
        return []
    out = _secret(ctx, "TP_PORTAL_UNIFI_PASSWORD", MIN_SHARED_LEN)
    if ctx.env.get("TP_PORTAL_UNIFI_VERIFY_TLS", "true").lower() in {"0", "false", "no"}:
        out.append("TP_PORTAL_UNIFI_VERIFY_TLS is off (controller certificate not verified)")
    if not ctx.env["TP_PORTAL_UNIFI_URL"].startswith("https://"):
        out.append("TP_PORTAL_UNIFI_URL is not https://")
    return out


def check_mqtt(ctx: Context) -> list[str]:
    out = []
    if not ctx.env.get("TP_MQTT_USERNAME"):
        out.append("TP_MQTT_USERNAME is not set (the broker must not accept anonymous clients)")
    out += _secret(ctx, "TP_MQTT_PASSWORD", MIN_SHARED_LEN)
    if not ctx.env.get("TP_MQTT_TLS_CA"):
        out.append("TP_MQTT_TLS_CA is not set: MQTT would run in plaintext")
    return out


def check_portal_mqtt(ctx: Context) -> list[str]:
    # The portal is mounted in the API: with the API's MQTT user its funnel events are
    # refused by the ACL (only the portal identity may write its funnel topic).
    user = ctx.env.get("TP_PORTAL_MQTT_USERNAME")
    if not user:
        return ["TP_PORTAL_MQTT_USERNAME is not set (the portal needs its own MQTT identity)"]
    out = _secret(ctx, "TP_PORTAL_MQTT_PASSWORD", MIN_SHARED_LEN)
    if user == ctx.env.get("TP_MQTT_USERNAME"):
        out.append("TP_PORTAL_MQTT_USERNAME is the process's own MQTT user (not least privilege)")
    return out


def check_kafka(ctx: Context) -> list[str]:
    # Names as the transport settings read them (Settings.kafka_client_settings).
    protocol = ctx.env.get("TP_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    if protocol != "SASL_SSL":
        return [
            f"TP_KAFKA_SECURITY_PROTOCOL is {protocol}: Kafka must use SASL_SSL "
            "(authenticated and encrypted)"
        ]
    out = []
    if not ctx.env.get("TP_KAFKA_USERNAME"):
        out.append("TP_KAFKA_USERNAME is not set")
    return out + _secret(ctx, "TP_KAFKA_PASSWORD", MIN_SHARED_LEN)


def check_api_docs(ctx: Context) -> list[str]:
    if ctx.env.get("TP_API_DOCS", "true").lower() in {"0", "false", "no", "off"}:
        return []
    return ["TP_API_DOCS is on: /docs and /openapi.json would map the API for attackers"]


def check_camera_operator_key(ctx: Context) -> list[str]:
    if "TP_CAMERA_OPERATOR_KEY" not in ctx.env:
        return []  # camera control disabled
    return _secret(ctx, "TP_CAMERA_OPERATOR_KEY")


def check_database_url(ctx: Context) -> list[str]:
    url = ctx.env.get("DATABASE_URL") or ctx.env.get("TP_DATABASE_URL")
    if not url:
        return ["DATABASE_URL is not set (the default is tourpulse:tourpulse, a superuser)"]
    parts = urlsplit(url)
    out = []
    if parts.username in {None, "", "postgres", "tourpulse"} and parts.password in {
        None,
        "",
        "tourpulse",
        "postgres",
    }:
        out.append("DATABASE_URL uses default credentials")
    elif parts.password is not None:
        why = _weak(parts.password, MIN_SHARED_LEN)
        if why:
            out.append(f"the DATABASE_URL password is {why}")
    return out


def _configs(ctx: Context) -> tuple[DeviceConfigs | None, list[str]]:
    try:
        return load_device_configs(ctx.device_configs), []
    except (ConfigError, OSError) as exc:
        return None, [f"device configs unreadable: {exc}"]


def check_radius_secrets(ctx: Context) -> list[str]:
    configs, out = _configs(ctx)
    if configs is None:
        return out
    try:
        secrets = load_secrets(ctx.secrets_file)
    except (OSError, PermissionError, ValueError) as exc:
        return [f"secrets file unusable: {exc}"]
    refs: list[tuple[str, str]] = []
    for site in configs.sites:
        refs += [(f"site {site.id} NAS {nas.ip}", nas.secret) for nas in site.radius_nas]
    refs += [(f"AP {ap.id}", ap.radius_secret) for ap in configs.access_points if ap.radius_secret]
    for what, ref in refs:
        kind, _, key = ref.partition(":")  # as device_configs.wifi.resolve_secret does
        value = ctx.env.get(key) if kind == "env" else secrets.get(key)
        why = _weak(value, MIN_SHARED_LEN)
        if why:
            out.append(f"RADIUS secret of {what} ({ref}) is {why}")
    return out


def check_camera_credentials(ctx: Context) -> list[str]:
    configs, out = _configs(ctx)
    if configs is None:
        return out
    for camera in configs.cameras:
        setup = camera.setup
        credentials = getattr(setup, "credentials", None) if setup else None
        if credentials is None or credentials.password_env not in ctx.env:
            continue  # a camera without configured credentials is simply not driven
        why = _weak(ctx.env[credentials.password_env], MIN_SHARED_LEN)
        if why:
            out.append(
                f"ONVIF password of camera {camera.id} ({credentials.password_env}) is {why}"
            )
    return out


CHECKS: dict[str, Callable[[Context], list[str]]] = {
    "ioc_jwt_secret": check_ioc_jwt_secret,
    "portal_secret": check_portal_secret,
    "portal_admin_tokens": check_portal_admin_tokens,
    "opennds_faskey": check_opennds_faskey,
    "unifi_controller": check_unifi,
    "mqtt_broker": check_mqtt,
    "portal_mqtt_identity": check_portal_mqtt,
    "kafka_broker": check_kafka,
    "api_docs": check_api_docs,
    "camera_operator_key": check_camera_operator_key,
    "camera_credentials": check_camera_credentials,
    "database_url": check_database_url,
    "radius_secrets": check_radius_secrets,
}


#: Long-running commands checked at start-up in production, and which checks apply to
#: them (``None``: all). Edge agents run on site hardware that holds only its own secrets.
SERVICE_CHECKS: dict[str, tuple[str, ...] | None] = {
    "api": None,
    "gateway": None,
    "worker": None,
    "flows": None,
    "alerts": None,
    "edge": ("mqtt_broker", "radius_secrets", "camera_credentials"),
}


def run_preflight(
    env: Env | None = None,
    device_configs: Path | None = None,
    secrets_file: Path | None = None,
    only: tuple[str, ...] | None = None,
) -> Report:
    env = os.environ if env is None else env
    if secrets_file is None and env.get("TP_SECRETS_FILE"):
        secrets_file = Path(env["TP_SECRETS_FILE"])
    ctx = Context(
        env, device_configs or Path(env.get("TP_DEVICE_CONFIGS", DEVICE_CONFIG_DIR)), secrets_file
    )
    report = Report()
    for name, check in CHECKS.items():
        if only is not None and name not in only:
            continue
        report.checks.append(name)
        report.problems += [Problem(name, m) for m in check(ctx)]
    return report


def is_production(env: Env | None = None) -> bool:
    env = os.environ if env is None else env
    return PRODUCTION in {env.get("TP_ENVIRONMENT"), env.get("TP_IOC_ENVIRONMENT")}


def enforce_at_startup(command: str | None, env: Env | None = None) -> None:
    """Raise :class:`InsecureConfig` listing every problem, for a service command in
    production only (development and one-shot commands are never blocked)."""
    if command not in SERVICE_CHECKS or not is_production(env):
        return
    report = run_preflight(env, only=SERVICE_CHECKS[command])
    if not report.ok:
        raise InsecureConfig("refusing to start in production:\n" + report.render())


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "preflight",
        help="check a production configuration (secrets, brokers, /docs, DSNs)",
        description="Run every production check against the current environment and list "
        "every problem; exit 1 if there is any. The same checks run at start-up of every "
        "service when TP_ENVIRONMENT=production.",
    )
    parser.add_argument("--secrets-file", type=Path, help="deployment secrets (RADIUS)")
    parser.add_argument("--device-configs", type=Path, help="device config dir")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    report = run_preflight(device_configs=args.device_configs, secrets_file=args.secrets_file)
    if args.json:
        print(
            json.dumps(
                {
                    "checks": report.checks,
                    "problems": [{"check": p.check, "message": p.message} for p in report.problems],
                }
            )
        )
    else:
        print(
            report.render()
            if report.problems
            else f"preflight: {len(report.checks)} checks, all ok"
        )
    sys.stdout.flush()
    return 0 if report.ok else 1
