"""Alert rules: thresholds, hysteresis, minimum duration, timeouts (pure, no brokers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from device_configs.alerting import (
    AnomalyRule,
    CameraRule,
    DeviceOfflineRule,
    LoudNoiseRule,
    OccupancyHighRule,
    RapidRiseRule,
)
from stream.alerts import rules
from stream.alerts.lifecycle import Severity

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_occupancy_high_needs_min_duration_and_clears_with_hysteresis() -> None:
    rule = OccupancyHighRule(raise_ratio=0.9, clear_ratio=0.8, min_duration_s=60)
    ev = rules.OccupancyHigh("market", 1000, rule)
    assert ev.observe(950, s(0)) is None  # above, but not for long enough
    assert ev.observe(400, s(30)) is None  # dipped: the clock restarts
    assert ev.observe(950, s(40)) is None
    raised = ev.observe(960, s(100))
    assert raised is not None and raised.action == "raise" and raised.severity is Severity.MAJOR
    assert raised.details["above_for_s"] == 60
    assert ev.observe(850, s(110)) is None  # inside the hysteresis band: still active
    cleared = ev.observe(790, s(120))
    assert cleared is not None and cleared.action == "clear"
    assert ev.observe(700, s(130)) is None  # cleared once only


def test_rapid_rise_within_window() -> None:
    ev = rules.RapidRise("market", 1000, RapidRiseRule(rise_ratio=0.25, window_s=300))
    assert ev.observe(100, s(0)) is None
    assert ev.observe(300, s(200)) is None
    assert ev.observe(400, s(400)) is None  # 100 fell out of the window: rise is 100
    raised = ev.observe(560, s(450))  # 560 - 300 = 260 >= 250
    assert raised is not None and raised.details["rise"] == 260
    assert ev.observe(560, s(800)).action == "clear"  # type: ignore[union-attr]


def test_anomaly_needs_enough_weeks_and_a_real_deviation() -> None:
    ev = rules.Anomaly("museum", AnomalyRule(z_threshold=3, min_weeks=3))
    assert ev.observe(5000, [100, 110], s(0)) is None  # two weeks: no opinion
    assert ev.observe(115, [100, 110, 105, 95], s(0)) is None
    raised = ev.observe(300, [100, 110, 105, 95], s(0))
    assert raised is not None and raised.details["z"] > 3
    assert ev.observe(104, [100, 110, 105, 95], s(1)).action == "clear"  # type: ignore[union-attr]


def test_device_liveness_timeout_last_will_and_recovery() -> None:
    live = rules.device_liveness(DeviceOfflineRule(timeout_s=90))
    assert live.heard("ap-1", "market", s(0)) is None
    live.heard("ap-2", "market", s(50))
    assert live.check(s(89)) == []
    (down,) = live.check(s(95))
    assert (down.action, down.originator, down.type) == ("raise", "ap-1", rules.DEVICE_OFFLINE)
    assert live.check(s(96)) == []  # one signal per outage
    back = live.heard("ap-1", "market", s(100))
    assert back is not None and back.action == "clear"
    will = live.offline("ap-2", "market", s(101), "last-will")
    assert will.details == {"reason": "last-will"}


def test_tamper_stream_lost_and_loud_noise() -> None:
    cam = CameraRule(stream_timeout_s=30)
    assert rules.tamper("cam-1", "cu-chi", True, s(0), cam).type == rules.CAMERA_TAMPER
    streams = rules.stream_liveness(cam)
    streams.heard("cam-1", "cu-chi", s(0))
    assert [x.type for x in streams.check(s(31))] == [rules.CAMERA_STREAM_LOST]
    noise = rules.LoudNoise(LoudNoiseRule(min_rise_db=20, clear_after_s=60))
    assert noise.observe("cam-1", "cu-chi", 12, -20, s(0)) is None
    assert noise.observe("cam-1", "cu-chi", 25, -3, s(1)).action == "raise"  # type: ignore[union-attr]
    assert noise.check(s(30)) == []
    assert [x.action for x in noise.check(s(61))] == ["clear"]
