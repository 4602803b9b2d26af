"""Capacity model of the city: events per second at the busiest hour, from the site list.

Why a model and not a measurement: the platform must be sized before the city is wired,
and the load test (:mod:`infra.bench.scale`) needs a number to multiply. Every input is
either in the deployment's site list (capacity, access points, cameras per site, from
``device_configs/hcmc``, itself copied from ``../shared/data/hcmc_sites.yaml``) or one of
the simulator's documented planning figures (:class:`edge.simulator.generator.SimConfig`,
:mod:`edge.simulator.profiles`); docs/capacity.md explains each term.

Per site, at the weekend's busiest hour (every site at its peak at once: conservative):

* peak connected devices ``D = capacity x peak_fill x wifi_adoption``;
* session churn (Little's law at a steady full site): ``D / mean_dwell`` arrivals per
  second, each a RADIUS start and a stop: ``2 D / mean_dwell`` events/s;
* interim updates: ``D / interim_s`` events/s (RADIUS Acct-Interim-Interval);
* cameras: :data:`CAMERA_EVENTS_PER_S` each (per-second counts, audio level, line and
  ONVIF events);
* heartbeats: one per edge box (one per site) and per camera agent every
  :data:`HEARTBEAT_S`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from device_configs.loader import load_device_configs
from edge.simulator.generator import SimConfig
from edge.simulator.profiles import profile_for

#: camera.metadata (1/s) + camera.audio.level (1/s) + line crossings and ONVIF events
#: (about 1/s at a busy site): a planning figure, not a measurement.
CAMERA_EVENTS_PER_S = 3.0
HEARTBEAT_S = 30.0  # schemas.device: every edge device beats every 30 s
#: Clients one access point serves well; only reported (devices per AP), not a cap.
CLIENTS_PER_AP = 150


@dataclass(frozen=True)
class SiteLoad:
    site: str
    capacity_persons: int
    access_points: int
    cameras: int
    peak_devices: float
    devices_per_ap: float
    mean_dwell_min: float
    churn_events_per_s: float
    interim_events_per_s: float
    camera_events_per_s: float
    heartbeat_events_per_s: float

    @property
    def events_per_s(self) -> float:
        return (
            self.churn_events_per_s
            + self.interim_events_per_s
            + self.camera_events_per_s
            + self.heartbeat_events_per_s
        )


def city_load(config_dir: Path) -> list[SiteLoad]:
    """One :class:`SiteLoad` per site of the deployment in ``config_dir``."""
    configs = load_device_configs(config_dir)
    sim = SimConfig(start=datetime.now(UTC))  # the simulator's defaults are the inputs
    peak_fill, adoption, interim_s = sim.peak_fill, sim.wifi_adoption, sim.interim_s
    loads = []
    for site in configs.sites:
        aps = len(configs.access_points_at(site.id))
        cameras = sum(1 for cam in configs.cameras if cam.site == site.id)
        devices = site.capacity_persons * peak_fill * adoption
        dwell_s = profile_for(site).mean_dwell_s
        loads.append(
            SiteLoad(
                site=site.id,
                capacity_persons=site.capacity_persons,
                access_points=aps,
                cameras=cameras,
                peak_devices=round(devices, 1),
                devices_per_ap=round(devices / max(aps, 1), 1),
                mean_dwell_min=round(dwell_s / 60, 1),
                churn_events_per_s=round(2 * devices / dwell_s, 3),
                interim_events_per_s=round(devices / interim_s, 3),
                camera_events_per_s=cameras * CAMERA_EVENTS_PER_S,
                heartbeat_events_per_s=round((1 + cameras) / HEARTBEAT_S, 3),
            )
        )
    return loads


def city_load_events_per_s(config_dir: Path) -> float:
    return round(sum(s.events_per_s for s in city_load(config_dir)), 1)


def summary(config_dir: Path) -> dict[str, object]:
    """The model's totals and per-site rows, JSON-ready (written into .bench/scale.json)."""
    loads = city_load(config_dir)
    return {
        "sites": len(loads),
        "access_points": sum(s.access_points for s in loads),
        "cameras": sum(s.cameras for s in loads),
        "peak_devices": round(sum(s.peak_devices for s in loads)),
        "churn_events_per_s": round(sum(s.churn_events_per_s for s in loads), 1),
        "interim_events_per_s": round(sum(s.interim_events_per_s for s in loads), 1),
        "camera_events_per_s": round(sum(s.camera_events_per_s for s in loads), 1),
        "heartbeat_events_per_s": round(sum(s.heartbeat_events_per_s for s in loads), 1),
        "city_load_events_per_s": round(sum(s.events_per_s for s in loads), 1),
        "per_site": [{**asdict(s), "events_per_s": round(s.events_per_s, 2)} for s in loads],
    }
