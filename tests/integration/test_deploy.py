"""The deployment kit an operator gets (infra/deploy/) is checked by the real tools.

systemd units go through ``systemd-analyze verify`` (which prints a warning and still
exits 0 for an unknown or misspelt option, so any output is a failure here); the
Prometheus rules through ``promtool check rules`` and ``promtool test rules`` (the unit
tests prove the alerts fire on sample series). Each check skips when its tool is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "infra" / "deploy"
UNITS = DEPLOY / "systemd"
RULES = DEPLOY / "prometheus"
INSTALLED_BIN = "/opt/tourpulse/.venv/bin/tourpulse"

#: Every long-running service and edge agent needs a unit (plus the one-shot migration).
EXPECTED_UNITS = {
    "tourpulse-migrate.service",
    "tourpulse-gateway@.service",
    "tourpulse-worker@.service",
    "tourpulse-flows.service",
    "tourpulse-alerts.service",
    "tourpulse-api.service",
    "tourpulse-edge-wifi.service",
    "tourpulse-edge-camera@.service",
}
HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "RestrictSUIDSGID=yes",
    "SystemCallFilter=@system-service",
    "CapabilityBoundingSet=",
)


def test_every_service_has_a_hardened_unit() -> None:
    units = {p.name for p in UNITS.glob("*.service")}
    assert units == EXPECTED_UNITS
    for name in units:
        lines = (UNITS / name).read_text().splitlines()
        missing = [opt for opt in HARDENING if not any(ln.startswith(opt) for ln in lines)]
        assert not missing, f"{name} lacks {missing}"
        assert any(ln.startswith(f"ExecStart={INSTALLED_BIN} ") for ln in lines), name


def _instantiate(tmp_path: Path) -> list[Path]:
    """Copies of the units as systemd would load them: templates get an instance name
    and ExecStart points at this checkout's ``tourpulse`` (verify checks it exists)."""
    here = str(Path(sys.executable).parent / "tourpulse")
    out = []
    for unit in sorted(UNITS.glob("*.service")):
        name = unit.name.replace("@.", "@9102.") if "@." in unit.name else unit.name
        target = tmp_path / name
        target.write_text(unit.read_text().replace(INSTALLED_BIN, here))
        out.append(target)
    return out


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    units = _instantiate(tmp_path)
    proc = subprocess.run(
        [tool, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), (
        proc.stdout + proc.stderr
    )


def test_a_misspelt_option_is_caught(tmp_path: Path) -> None:
    """The check above can fail: verify's warning for a typo makes it fail."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = next(u for u in _instantiate(tmp_path) if u.name == "tourpulse-flows.service")
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt"))
    proc = subprocess.run(
        [tool, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "strickt" in proc.stdout + proc.stderr


def test_alert_rules_pass_promtool() -> None:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    check = subprocess.run(
        [tool, "check", "rules", "tourpulse-alerts.rules.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit_tests = subprocess.run(
        [tool, "test", "rules", "tourpulse-alerts.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit_tests.returncode == 0, unit_tests.stdout + unit_tests.stderr


def test_alert_rules_cover_lag_dead_letters_outbox_brokers_database() -> None:
    text = (RULES / "tourpulse-alerts.rules.yml").read_text()
    for metric in (
        "kafka_consumergroup_lag",
        "tp_gateway_dead_lettered_total",
        "tp_edge_outbox_depth",
        "kafka_brokers",
        "pg_up",
    ):
        assert metric in text, metric
