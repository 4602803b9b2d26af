"""Alert rules as small stateful evaluators (no I/O), one per condition.

Each evaluator is fed observations and returns :class:`Signal` s to raise or clear an
alert; the engine applies them to the :class:`~stream.alerts.store.AlertStore`, which
keeps one active alert per (originator, type). Keeping rules pure makes every threshold,
hysteresis and timeout testable without brokers.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from device_configs.alerting import (
    AnomalyRule,
    CameraRule,
    DeviceOfflineRule,
    LoudNoiseRule,
    OccupancyHighRule,
    RapidRiseRule,
)
from stream.alerts.lifecycle import Severity

OCCUPANCY_HIGH = "occupancy.high"
RAPID_RISE = "occupancy.rapid_rise"
ANOMALY = "occupancy.anomaly"
DEVICE_OFFLINE = "device.offline"
CAMERA_TAMPER = "camera.tamper"
CAMERA_STREAM_LOST = "camera.stream_lost"
LOUD_NOISE = "noise.loud"


@dataclass(frozen=True)
class Signal:
    action: Literal["raise", "clear"]
    originator: str
    site: str
    type: str
    at: datetime
    severity: Severity = Severity.WARNING
    details: dict[str, Any] = field(default_factory=dict)


def _raise(
    originator: str, site: str, type_: str, at: datetime, severity: str, **details: Any
) -> Signal:
    return Signal("raise", originator, site, type_, at, Severity[severity], details)


def _clear(originator: str, site: str, type_: str, at: datetime) -> Signal:
    return Signal("clear", originator, site, type_, at)


class OccupancyHigh:
    """Above ``raise_ratio`` × capacity for ``min_duration_s`` raises; below ``clear_ratio``
    clears. Between the two nothing changes (hysteresis)."""

    def __init__(self, site: str, capacity: int, rule: OccupancyHighRule) -> None:
        self.site, self.capacity, self.rule = site, capacity, rule
        self._above_since: datetime | None = None
        self._raised = False

    def observe(self, people: float, at: datetime) -> Signal | None:
        ratio = people / self.capacity
        if ratio >= self.rule.raise_ratio:
            self._above_since = self._above_since or at
            held = (at - self._above_since).total_seconds()
            if held >= self.rule.min_duration_s:
                self._raised = True  # re-raising while active only retriggers the alert
                return _raise(
                    self.site,
                    self.site,
                    OCCUPANCY_HIGH,
                    at,
                    self.rule.severity,
                    occupancy=round(people),
                    capacity=self.capacity,
                    ratio=round(ratio, 3),
                    above_for_s=round(held),
                )
            return None
        if ratio < self.rule.clear_ratio:
            self._above_since = None
            if self._raised:
                self._raised = False
                return _clear(self.site, self.site, OCCUPANCY_HIGH, at)
        return None


class RapidRise:
    """Occupancy grew by ``rise_ratio`` × capacity within ``window_s``."""

    def __init__(self, site: str, capacity: int, rule: RapidRiseRule) -> None:
        self.site, self.capacity, self.rule = site, capacity, rule
        self._window: deque[tuple[datetime, float]] = deque()
        self._raised = False

    def observe(self, people: float, at: datetime) -> Signal | None:
        horizon = at - timedelta(seconds=self.rule.window_s)
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()
        self._window.append((at, people))
        low = min(v for _, v in self._window)
        rise = people - low
        if rise >= self.rule.rise_ratio * self.capacity:
            self._raised = True
            return _raise(
                self.site,
                self.site,
                RAPID_RISE,
                at,
                self.rule.severity,
                rise=round(rise),
                window_s=self.rule.window_s,
                occupancy=round(people),
            )
        if self._raised and rise < 0.5 * self.rule.rise_ratio * self.capacity:
            self._raised = False
            return _clear(self.site, self.site, RAPID_RISE, at)
        return None


class Anomaly:
    """Occupancy far from the same hour-of-week in past weeks (z-score).

    ``baseline`` holds past values for this hour-of-week (one per week, from the hourly
    rollups); fewer than ``min_weeks`` values means no opinion rather than a guess.
    """

    def __init__(self, site: str, rule: AnomalyRule) -> None:
        self.site, self.rule = site, rule
        self._raised = False

    def observe(self, people: float, baseline: list[float], at: datetime) -> Signal | None:
        if len(baseline) < self.rule.min_weeks:
            return None
        mean = statistics.fmean(baseline)
        spread = max(statistics.pstdev(baseline), 1.0, 0.05 * mean)  # floor: avoid z on noise
        z = (people - mean) / spread
        if abs(z) >= self.rule.z_threshold:
            self._raised = True
            return _raise(
                self.site,
                self.site,
                ANOMALY,
                at,
                self.rule.severity,
                occupancy=round(people),
                baseline_mean=round(mean, 1),
                z=round(z, 2),
            )
        if self._raised and abs(z) < self.rule.z_threshold / 2:
            self._raised = False
            return _clear(self.site, self.site, ANOMALY, at)
        return None


class Liveness:
    """Devices (or camera streams) that must keep talking; silence past a timeout alerts.

    Times are *arrival* times (wall clock at ingest), not event times: a device whose
    clock is wrong must still be judged by when we last heard from it.
    """

    def __init__(self, type_: str, timeout_s: float, severity: str) -> None:
        self.type, self.timeout_s, self.severity = type_, timeout_s, severity
        self._last: dict[str, tuple[str, datetime]] = {}
        self._down: set[str] = set()

    def heard(self, device: str, site: str, at: datetime) -> Signal | None:
        self._last[device] = (site, at)
        if device in self._down:
            self._down.discard(device)
            return _clear(device, site, self.type, at)
        return None

    def offline(self, device: str, site: str, at: datetime, reason: str) -> Signal:
        """An explicit offline (MQTT Last Will): alert at once, don't wait for the timeout."""
        self._last.pop(device, None)
        self._down.add(device)
        return _raise(device, site, self.type, at, self.severity, reason=reason)

    def check(self, now: datetime) -> list[Signal]:
        signals = []
        for device, (site, last) in list(self._last.items()):
            silent = (now - last).total_seconds()
            if silent >= self.timeout_s and device not in self._down:
                self._down.add(device)
                signals.append(
                    _raise(
                        device,
                        site,
                        self.type,
                        now,
                        self.severity,
                        reason="timeout",
                        silent_s=round(silent),
                    )
                )
        return signals


def device_liveness(rule: DeviceOfflineRule) -> Liveness:
    return Liveness(DEVICE_OFFLINE, rule.timeout_s, rule.severity)


def stream_liveness(rule: CameraRule) -> Liveness:
    return Liveness(CAMERA_STREAM_LOST, rule.stream_timeout_s, rule.severity)


def tamper(camera: str, site: str, active: bool, at: datetime, rule: CameraRule) -> Signal:
    if active:
        return _raise(camera, site, CAMERA_TAMPER, at, rule.severity)
    return _clear(camera, site, CAMERA_TAMPER, at)


class LoudNoise:
    """Raise on a loud-noise event above ``min_rise_db``; clear after a quiet period."""

    def __init__(self, rule: LoudNoiseRule) -> None:
        self.rule = rule
        self._last: dict[str, tuple[str, datetime]] = {}

    def observe(
        self, camera: str, site: str, rise_db: float, peak_dbfs: float, at: datetime
    ) -> Signal | None:
        if rise_db < self.rule.min_rise_db:
            return None
        self._last[camera] = (site, at)
        return _raise(
            camera,
            site,
            LOUD_NOISE,
            at,
            self.rule.severity,
            rise_db=round(rise_db, 1),
            peak_dbfs=round(peak_dbfs, 1),
        )

    def check(self, now: datetime) -> list[Signal]:
        quiet = timedelta(seconds=self.rule.clear_after_s)
        done = [(c, s) for c, (s, at) in self._last.items() if now - at >= quiet]
        for camera, _ in done:
            del self._last[camera]
        return [_clear(camera, site, LOUD_NOISE, now) for camera, site in done]
