"""``tourpulse preflight`` and the production start-up check: every weak or default
secret, open broker, /docs and default DSN is reported, all at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from api.app import create_app
from api.config import ApiTuning
from core.settings import Settings
from infra.preflight import CHECKS, enforce_at_startup, run_preflight
from tests.support.api_support import asgi_client

STRONG = "k3Y-" + "aZ09xQ7pL2mN8vB4cR6tY1uW5eS3dF" + "-end"

GOOD_ENV = {
    "TP_ENVIRONMENT": "production",
    "TP_IOC_JWT_SECRET": STRONG,
    "TP_PORTAL_SECRET": STRONG[::-1],
    "TP_PORTAL_ADMIN_TOKENS": f'{{"ops": "{STRONG}x"}}',
    "TP_PORTAL_OPENNDS_FASKEY": STRONG + "faskey",
    "TP_MQTT_USERNAME": "api",
    "TP_MQTT_PASSWORD": "Mq77-pass-word-XYZ",
    "TP_MQTT_TLS_CA": "/etc/tourpulse/ca.pem",
    "TP_PORTAL_MQTT_USERNAME": "tp-portal",
    "TP_PORTAL_MQTT_PASSWORD": "Pt42-portal-pass-UVW",
    "TP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "TP_KAFKA_USERNAME": "api",
    "TP_KAFKA_PASSWORD": "Kf99-sasl-pass-QRS",
    "TP_API_DOCS": "false",
    "TP_CAMERA_OPERATOR_KEY": STRONG + "op",
    "DATABASE_URL": "postgresql://tp_api:Pg55-strong-pass-LMN@db.internal/tourpulse",
}


def _radius_configs(tmp_path: Path, ref: str) -> Path:
    directory = tmp_path / "configs"
    directory.mkdir()
    (directory / "sites.yaml").write_text(
        "sites:\n- id: s1\n  name_vi: Site\n  name_en: Site\n  kind: urban\n  lat: 10.77\n"
        "  lon: 106.7\n  capacity_persons: 100\n  radius_nas:\n  - ip: 10.0.0.1\n"
        f"    secret: {ref}\n"
    )
    return directory


def test_a_strong_configuration_passes(tmp_path: Path) -> None:
    configs = _radius_configs(tmp_path, "env:RADIUS_S1")
    report = run_preflight({**GOOD_ENV, "RADIUS_S1": "Rd-88-shared-secret-JK"}, configs)
    assert report.ok, report.render()
    assert report.checks == list(CHECKS)


def test_defaults_are_refused_listing_every_problem_at_once(tmp_path: Path) -> None:
    configs = _radius_configs(tmp_path, "env:RADIUS_S1")
    env = {
        "TP_ENVIRONMENT": "production",
        "TP_IOC_JWT_SECRET": "changeme",
        "TP_PORTAL_ADMIN_TOKENS": '{"ops": "short"}',
        "TP_PORTAL_OPENNDS_FASKEY": "1234567890",
        "TP_MQTT_PASSWORD": "tourpulse",
        "TP_CAMERA_OPERATOR_KEY": "tourpulse-demo-operator",
        "DATABASE_URL": "postgresql://tourpulse:tourpulse@127.0.0.1:5432/tourpulse",
        "RADIUS_S1": "testing123",
    }
    report = run_preflight(env, configs)
    failed = {p.check for p in report.problems}
    assert failed == set(CHECKS) - {"unifi_controller", "camera_credentials"}, report.render()
    text = report.render()
    for needle in (
        "TP_IOC_JWT_SECRET is a known default",
        "TP_PORTAL_SECRET is not set",
        "admin token of 'ops' is shorter than 32",
        "TP_MQTT_TLS_CA is not set",
        "TP_PORTAL_MQTT_USERNAME is not set",
        "TP_KAFKA_SECURITY_PROTOCOL is PLAINTEXT",
        "TP_API_DOCS is on",
        "TP_CAMERA_OPERATOR_KEY is a known default/demo value",
        "DATABASE_URL uses default credentials",
        "RADIUS secret of site s1 NAS 10.0.0.1 (env:RADIUS_S1) is a known default",
    ):
        assert needle in text, text
    # Development never blocks; production blocks service commands only.
    enforce_at_startup("api", {**env, "TP_ENVIRONMENT": "development"})
    enforce_at_startup("preflight", env)


def test_cli_and_service_start_refuse_a_weak_production_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TP_") and k != "DATABASE_URL"}
    env |= {"TP_DATA_DIR": str(tmp_path), "TP_IOC_ENVIRONMENT": "production"}
    cli = [sys.executable, "-m", "infra.cli"]
    checked = subprocess.run(
        [*cli, "preflight"], env=env, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 1
    assert f"{len(CHECKS)} checks" in checked.stdout and "TP_PORTAL_SECRET" in checked.stdout
    api = subprocess.run(
        [*cli, "api", "--port", "28081"], env=env, capture_output=True, text=True, timeout=60
    )
    assert api.returncode == 2
    assert "refusing to start in production" in api.stderr
    assert "TP_IOC_JWT_SECRET is not set" in api.stderr and "DATABASE_URL" in api.stderr
    fine = subprocess.run(
        [*cli, "preflight"], env=env | GOOD_ENV, capture_output=True, text=True, timeout=60
    )
    assert fine.returncode == 0, fine.stdout


async def test_docs_can_be_turned_off(settings: Settings) -> None:
    app = create_app(settings, ApiTuning(docs=False), features=("api.routes.health",))
    async with asgi_client(app) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            r: httpx.Response = await client.get(path)
            assert r.status_code == 404, path
