"""The math of fused occupancy, free of I/O so every rule is unit-testable.

people = wifi_clients x people_per_client. The ratio starts at the site's configured prior
(1 / Wi-Fi adoption) and is calibrated from cameras where both sensors report: each pair
gives a sample camera_people / (wifi_clients x coverage), folded into an exponentially
weighted mean and variance so the ratio follows slow changes (time of day, visitor mix).
The band is the ratio's spread: +-Z standard deviations once calibrated, a wide fixed
fraction before. Without fresh Wi-Fi, the cameras alone give people = camera / coverage.

A sample below one person per connected client is refused: every connected phone is
carried by someone on the site, so such a camera is not seeing the site's crowd (wrong
coverage, a PTZ tour pointing elsewhere, a feed of another place -- the demo's pedestrian
clip at a festival once calibrated the rice-paper village to 0.1 people per phone and hid
its overcrowding). The site is flagged ``camera_disagrees`` instead.

Every estimate says what it rests on (``source``) and how far to trust it
(``confidence``): a camera-calibrated ratio is ``high``, the configured ratio of a
Wi-Fi-only site or cameras alone ``medium``; each sensor-health flag (camera offline,
detector fallback, Wi-Fi silent, camera disagreeing) lowers it one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Source = Literal["wifi_calibrated", "wifi_prior", "camera"]
Confidence = Literal["high", "medium", "low"]
_LEVELS: tuple[Confidence, ...] = ("high", "medium", "low")

#: Band half-width (relative) while the ratio is only the configured prior.
UNCALIBRATED_SPREAD = 0.5
#: Band half-width (relative) of a camera-only estimate (coverage is a rough share).
CAMERA_ONLY_SPREAD = 0.3
#: Standard deviations of the ratio covered by the band (about 90 %).
Z = 1.645


@dataclass(frozen=True)
class FusionParams:
    alpha: float = 0.05  # EWMA weight of a new sample
    min_samples: int = 10  # samples before the ratio counts as calibrated
    min_clients: int = 5  # fewer clients make the ratio too noisy to learn from
    min_spread: float = 0.05  # the band never claims better than +-5 %
    min_ratio: float = 1.0  # fewer people than connected phones: the camera misses the crowd
    max_ratio: float = 20.0  # a 5 % Wi-Fi adoption is the least any site has shown
    wifi_stale_s: float = 120.0
    camera_stale_s: float = 30.0


@dataclass
class Calibration:
    """EWMA mean and variance of people per Wi-Fi client (West's incremental form)."""

    ratio: float
    variance: float = 0.0
    samples: int = 0

    def add(self, sample: float, alpha: float) -> None:
        if self.samples == 0:
            self.ratio, self.variance = sample, 0.0
        else:
            diff = sample - self.ratio
            incr = alpha * diff
            self.ratio += incr
            self.variance = (1 - alpha) * (self.variance + diff * incr)
        self.samples += 1


@dataclass
class Reading:
    value: int
    at: float  # receipt time (monotonic seconds)


@dataclass
class SiteState:
    """What is known about one site: latest readings and its calibration."""

    site: str
    prior: float
    cameras: dict[str, float] = field(default_factory=dict)  # camera id -> coverage
    capacity: int | None = None
    wifi: Reading | None = None
    wifi_as_of: datetime | None = None  # event-time watermark of the Wi-Fi count
    camera_people: dict[str, Reading] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)  # devices reported offline
    fallback: set[str] = field(default_factory=set)  # cameras counting with the motion fallback
    calibration: Calibration | None = None
    camera_disagrees: bool = False  # the latest camera sample was implausible
    implausible_samples: int = 0

    def ratio(self, params: FusionParams) -> tuple[float, bool]:
        c = self.calibration
        if (
            c is not None
            and c.samples >= params.min_samples
            and params.min_ratio <= c.ratio <= params.max_ratio
        ):
            return c.ratio, True
        return self.prior, False


@dataclass(frozen=True)
class Estimate:
    people: float
    low: float
    high: float
    wifi_clients: int | None
    camera_people: int | None
    people_per_client: float | None
    degraded: bool
    stale_sensors: list[str]
    source: Source
    confidence: Confidence
    flags: list[str]


def fresh_cameras(state: SiteState, now: float, params: FusionParams) -> dict[str, Reading]:
    return {
        cam: r
        for cam, r in state.camera_people.items()
        if now - r.at <= params.camera_stale_s and cam not in state.offline
    }


def calibrate(state: SiteState, now: float, params: FusionParams) -> bool:
    """Add a sample if Wi-Fi and every camera of the site are fresh; return whether added.

    All cameras are required because coverage is a share of the site: a partial sum
    would bias the ratio low. Implausible samples (outside min_ratio..max_ratio) are
    refused and flag the site instead.
    """
    if not state.cameras or state.wifi is None or now - state.wifi.at > params.wifi_stale_s:
        return False
    if state.wifi.value < params.min_clients:
        return False
    fresh = fresh_cameras(state, now, params)
    if set(fresh) != set(state.cameras):
        return False
    coverage = min(1.0, sum(state.cameras.values()))
    sample = sum(r.value for r in fresh.values()) / (state.wifi.value * coverage)
    state.camera_disagrees = not params.min_ratio <= sample <= params.max_ratio
    if state.camera_disagrees:
        state.implausible_samples += 1
        return False
    if state.calibration is None:
        state.calibration = Calibration(state.prior)
    state.calibration.add(sample, params.alpha)
    return True


def estimate(state: SiteState, now: float, params: FusionParams) -> Estimate | None:
    """The site's fused estimate now, or None when no sensor ever reported."""
    stale = []
    wifi_fresh = state.wifi is not None and now - state.wifi.at <= params.wifi_stale_s
    if not wifi_fresh or "wifi" in state.offline:
        stale.append("wifi")
    fresh = fresh_cameras(state, now, params)
    stale += sorted(f"camera:{cam}" for cam in state.cameras if cam not in fresh)
    camera_total = sum(r.value for r in fresh.values()) if fresh else None
    ratio, calibrated = state.ratio(params)
    if state.wifi is not None and (wifi_fresh or not fresh):
        people = state.wifi.value * ratio
        if calibrated and state.calibration is not None:
            rel = Z * math.sqrt(state.calibration.variance) / ratio if ratio > 0 else 1.0
            spread = max(params.min_spread, rel)
        else:
            spread = UNCALIBRATED_SPREAD
        wifi_clients: int | None = state.wifi.value
    elif fresh:
        coverage = min(1.0, sum(state.cameras.get(c, 1.0) for c in fresh))
        people = (camera_total or 0) / coverage
        spread, wifi_clients = CAMERA_ONLY_SPREAD, None
    else:
        return None
    source: Source = (
        "camera" if wifi_clients is None else "wifi_calibrated" if calibrated else "wifi_prior"
    )
    flags = health_flags(state, stale)
    return Estimate(
        people=round(people, 1),
        low=round(max(0.0, people * (1 - spread)), 1),
        high=round(people * (1 + spread), 1),
        wifi_clients=wifi_clients,
        camera_people=camera_total,
        people_per_client=round(ratio, 4) if wifi_clients is not None else None,
        degraded=bool(stale),
        stale_sensors=stale,
        source=source,
        confidence=confidence(source, flags),
        flags=flags,
    )


def health_flags(state: SiteState, stale: list[str]) -> list[str]:
    """Sensor-health problems an operator should see next to the number."""
    flags = [
        "wifi_silent" if s == "wifi" else s.replace("camera:", "camera_offline:") for s in stale
    ]
    flags += sorted(f"detector_fallback:{cam}" for cam in state.fallback if cam in state.cameras)
    if state.camera_disagrees:
        flags.append("camera_disagrees")
    return flags


def confidence(source: Source, flags: list[str]) -> Confidence:
    """``high`` for a camera-calibrated ratio, ``medium`` otherwise; one step down per flag."""
    level = 0 if source == "wifi_calibrated" else 1
    return _LEVELS[min(len(_LEVELS) - 1, level + len(flags))]
