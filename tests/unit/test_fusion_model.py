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


def test_wifi_only_site_gets_people_from_its_configured_ratio_with_a_wide_band() -> None:
    state = SiteState("w", prior=3.0, capacity=500, wifi=Reading(40, 0.0))
    est = estimate(state, 1.0, P)
    assert est is not None and est.people == 120.0 and est.people_per_client == 3.0
    assert (est.low, est.high) == (60.0, 180.0)  # +-UNCALIBRATED_SPREAD
    assert est.source == "wifi_prior" and est.confidence == "medium" and est.flags == []
    silent = estimate(state, 1000.0, P)  # Wi-Fi quiet for longer than wifi_stale_s
    assert silent is not None and silent.flags == ["wifi_silent"]
    assert silent.confidence == "low"


def test_camera_seeing_fewer_people_than_phones_is_refused_and_flagged() -> None:
    """The demo's bug: a pedestrian clip (5 people) at a festival of 160 phones calibrated
    the site to 0.125 people per phone and hid its overcrowding."""
    state = _site()
    for t in range(30):
        state.wifi = Reading(160, float(t))
        state.camera_people["cam1"] = Reading(5, float(t))  # coverage 0.5: 0.0625 per phone
        assert not calibrate(state, float(t), P)
    assert state.calibration is None and state.implausible_samples == 30
    est = estimate(state, 30.0, P)
    assert est is not None and est.people == 400.0  # 160 x the configured 2.5
    assert est.source == "wifi_prior" and est.flags == ["camera_disagrees"]
    assert est.confidence == "low"


def test_health_flags_lower_a_calibrated_estimate_step_by_step() -> None:
    state = _site()
    for t in range(20):
        state.wifi = Reading(100, float(t))
        state.camera_people["cam1"] = Reading(150, float(t))
        calibrate(state, float(t), P)
    est = estimate(state, 20.0, P)
    assert est is not None and est.source == "wifi_calibrated" and est.confidence == "high"
    state.fallback.add("cam1")  # the agent fell back to motion counting
    est = estimate(state, 20.0, P)
    assert est is not None and est.flags == ["detector_fallback:cam1"]
    assert est.confidence == "medium"
    state.offline.add("cam1")
    est = estimate(state, 20.0, P)
    assert est is not None and est.confidence == "low"
    assert est.flags == ["camera_offline:cam1", "detector_fallback:cam1"]
    assert est.source == "wifi_calibrated"  # the learnt ratio carries on
