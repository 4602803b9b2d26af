"""Device configs: the shipped HCMC set is valid, and errors point at file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import DEVICE_CONFIG_DIR
from device_configs import ConfigError, load_device_configs


def test_shipped_hcmc_configs_are_valid() -> None:
    cfg = load_device_configs(DEVICE_CONFIG_DIR)
    assert len(cfg.sites) == 20
    # Post-2025 HCMC reaches from Con Dao (8.7 N) to the former Binh Duong (11.5 N).
    assert all(8.5 < s.lat < 11.8 and 106.0 < s.lon < 107.7 for s in cfg.sites)
    assert all(cfg.access_points_at(s.id) for s in cfg.sites)


def _write(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")


SITE = """sites:
  - id: ben-thanh-market
    name_vi: Chợ Bến Thành
    name_en: Ben Thanh Market
    kind: urban
    lat: 10.7725
    lon: 106.698
    capacity_persons: {capacity}
"""


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    _write(tmp_path, "sites", SITE.format(capacity="-3"))
    with pytest.raises(ConfigError) as err:
        load_device_configs(tmp_path)
    (problem,) = err.value.problems
    assert problem.startswith(f"{tmp_path / 'sites.yaml'}:8: sites.0.capacity_persons:")


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "sites", SITE.format(capacity="10") + "    capacityy: 3\n")
    with pytest.raises(ConfigError, match=r"sites.yaml:9: sites.0.capacityy: Extra inputs"):
        load_device_configs(tmp_path)


def test_device_must_reference_a_known_site(tmp_path: Path) -> None:
    _write(tmp_path, "sites", SITE.format(capacity="10"))
    _write(tmp_path, "access_points", "access_points:\n  - {id: x-ap1, site: nowhere, name: X}\n")
    with pytest.raises(ConfigError, match="unknown site 'nowhere'"):
        load_device_configs(tmp_path)


def test_yaml_syntax_error_is_reported_with_the_file(tmp_path: Path) -> None:
    _write(tmp_path, "sites", "sites: [\n")
    with pytest.raises(ConfigError, match=r"sites\.yaml"):
        load_device_configs(tmp_path)


def test_alert_rules_default_and_override_per_site() -> None:
    alerting = load_device_configs(DEVICE_CONFIG_DIR).alerting
    assert alerting.rules_for("ben-thanh-market").occupancy_high.raise_ratio == 0.9
    walking = alerting.rules_for("nguyen-hue-walking-street").occupancy_high
    assert (walking.raise_ratio, walking.severity) == (0.95, "CRITICAL")


def test_alert_rule_without_hysteresis_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "sites", SITE.format(capacity="10"))
    _write(
        tmp_path,
        "alerting",
        "alerting:\n  defaults:\n    occupancy_high: {raise_ratio: 0.8, clear_ratio: 0.9}\n",
    )
    expected = r"alerting.yaml:3: alerting.defaults.occupancy_high: .*hysteresis"
    with pytest.raises(ConfigError, match=expected):
        load_device_configs(tmp_path)
