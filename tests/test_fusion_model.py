"""Fused-occupancy math: calibration, bands, staleness, camera-only fallback."""

from __future__ import annotations

import math

import pytest

from stream.fusion.model import (
    UNCALIBRATED_SPREAD,
    Calibration,
    FusionParams,
    Reading,
    SiteState,
    calibrate,
    estimate,
)

P = FusionParams(alpha=0.2, min_samples=5)


def _site(**kw: object) -> SiteState:
    return SiteState("s", prior=2.5, cameras={"cam1": 0.5}, capacity=1000, **kw)  # type: ignore[arg-type]


def test_uncalibrated_estimate_uses_prior_with_wide_band() -> None:
    state = _site(wifi=Reading(100, 0.0))
    est = estimate(state, 1.0, P)
    assert est is not None
    assert est.people == 250.0 and est.people_per_client == 2.5
    assert est.low == 250 * (1 - UNCALIBRATED_SPREAD) and est.high == 250 * 1.5
    assert est.degraded and est.stale_sensors == ["camera:cam1"]  # never heard from cam1


def test_calibration_converges_and_narrows_the_band() -> None:
    state = _site()
    for t in range(60):
        # 100 clients, camera sees 150 in half the site: 300 people -> 3.0 per client
        state.wifi = Reading(100, float(t))
        state.camera_people["cam1"] = Reading(150 + (t % 3 - 1) * 6, float(t))
        assert calibrate(state, float(t), P)
    est = estimate(state, 60.0, P)
    assert est is not None and not est.degraded and est.stale_sensors == []
    assert est.people_per_client == pytest.approx(3.0, abs=0.05)
    assert est.low < est.people < est.high
    assert (est.high - est.low) / est.people < 2 * UNCALIBRATED_SPREAD / 4
    assert est.camera_people is not None


def test_no_sample_from_stale_camera_or_few_clients() -> None:
    state = _site(wifi=Reading(100, 100.0))
    state.camera_people["cam1"] = Reading(150, 0.0)  # 100 s old > 30 s
    assert not calibrate(state, 100.0, P)
    state.camera_people["cam1"] = Reading(150, 100.0)
    state.wifi = Reading(3, 100.0)
    assert not calibrate(state, 100.0, P)


def test_stale_wifi_falls_back_to_camera_only_and_is_degraded() -> None:
    state = _site(wifi=Reading(100, 0.0))
    state.camera_people["cam1"] = Reading(150, 500.0)
    est = estimate(state, 500.0, P)
    assert est is not None and est.degraded and est.stale_sensors == ["wifi"]
    assert est.people == 300.0 and est.wifi_clients is None


def test_offline_camera_is_stale_even_with_recent_counts() -> None:
    state = _site(wifi=Reading(100, 0.0))
    state.camera_people["cam1"] = Reading(150, 0.0)
    state.offline.add("cam1")
    est = estimate(state, 1.0, P)
    assert est is not None and est.stale_sensors == ["camera:cam1"]


def test_ewma_variance_matches_definition() -> None:
    c = Calibration(2.5)
    for x in (2.0, 4.0):
        c.add(x, 0.5)
    assert c.ratio == 3.0 and math.isclose(c.variance, 0.5 * (0 + 2.0 * 1.0))
    assert estimate(SiteState("x", 2.5), 0.0, P) is None
