"""Fused-occupancy state per site: feeds from Kafka messages, ticks out FusedOccupancyV1.

Independent of Kafka (the handlers in stream.flows.app call it), so tests drive it directly
with an injected clock. Calibrations are saved to PostgreSQL (fusion_calibration) every
few seconds and loaded on start, so a restart keeps what the cameras taught.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from prometheus_client import Counter
from pydantic import ValidationError

from device_configs import DeviceConfigs
from schemas.camera import CameraMetadataV1
from schemas.codec import ContractError, decode_event
from schemas.device import AvailabilityV1
from schemas.stream_out import FusedOccupancyV1, OccupancyUpdateV1
from stream.fusion.model import Calibration, FusionParams, Reading, SiteState, calibrate, estimate

log = logging.getLogger(__name__)

REJECTED = Counter(
    "tp_fusion_inputs_rejected_total", "Fusion inputs that could not be used, by input.", ["input"]
)
EMITTED = Counter("tp_fusion_updates_total", "FusedOccupancyV1 messages emitted.")
SAMPLES = Counter("tp_fusion_calibration_samples_total", "Camera/Wi-Fi calibration samples.")
IMPLAUSIBLE = Counter(
    "tp_fusion_calibration_implausible_total",
    "Camera/Wi-Fi samples refused as implausible (the camera does not see the site's crowd).",
)

SAVE_CALIBRATION = """
INSERT INTO fusion_calibration AS c (site, ratio, variance, samples)
SELECT * FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::int4[])
ON CONFLICT (site) DO UPDATE SET ratio = EXCLUDED.ratio, variance = EXCLUDED.variance,
    samples = EXCLUDED.samples, updated_at = now()
"""


class FusionService:
    def __init__(
        self,
        configs: DeviceConfigs,
        params: FusionParams,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.params = params
        self._clock = clock
        self._configs = configs
        self.sites: dict[str, SiteState] = {}
        self._sent: dict[str, tuple[object, ...]] = {}
        self._dirty_calibration: set[str] = set()
        self.last_tick: float | None = None
        for site in configs.sites:
            self._state(site.id)

    def _state(self, site: str) -> SiteState:
        state = self.sites.get(site)
        if state is None:
            try:
                cfg = self._configs.site(site)
                prior, capacity = cfg.people_per_client, cfg.capacity_persons
            except KeyError:  # a site without config still gets an (uncalibrated) estimate
                prior, capacity = 2.5, None
            cams = {c.id: c.coverage for c in self._configs.cameras if c.site == site}
            state = self.sites[site] = SiteState(site, prior, cams, capacity)
        return state

    def on_wifi(self, raw: bytes) -> None:
        try:
            msg = OccupancyUpdateV1.model_validate_json(raw)
        except ValidationError:
            REJECTED.labels("wifi").inc()
            return
        state = self._state(msg.site)
        state.wifi = Reading(msg.connected, self._clock())
        state.wifi_as_of = msg.as_of

    def on_camera(self, raw: bytes) -> None:
        try:
            event = decode_event(raw)
        except ContractError:
            REJECTED.labels("camera").inc()
            return
        if not isinstance(event, CameraMetadataV1):
            REJECTED.labels("camera").inc()
            return
        data = event.data
        people = sum(data.zones.values()) if data.zones else data.people
        state = self._state(event.site)
        state.camera_people[event.device] = Reading(people, self._clock())
        state.offline.discard(event.device)
        # The camera agent names its counter (detector, or the motion fallback without a
        # model); events from agents that predate the field count as the detector.
        if getattr(data, "counter", None) == "motion":
            state.fallback.add(event.device)
        else:
            state.fallback.discard(event.device)

    def on_availability(self, raw: bytes) -> None:
        try:
            event = decode_event(raw)
        except ContractError:
            REJECTED.labels("availability").inc()
            return
        if not isinstance(event, AvailabilityV1) or event.site not in self.sites:
            return  # other sites' or other kinds' devices are not ours to judge
        state = self.sites[event.site]
        name = event.device if event.device in state.cameras else "wifi"
        if event.data.state == "offline":
            state.offline.add(name)
        else:
            state.offline.discard(name)

    def tick(self) -> list[FusedOccupancyV1]:
        """Calibrate and estimate every site; return the estimates that changed."""
        now = self._clock()
        self.last_tick = now
        out = []
        for site, state in self.sites.items():
            refused = state.implausible_samples
            if calibrate(state, now, self.params):
                SAMPLES.inc()
                self._dirty_calibration.add(site)
            IMPLAUSIBLE.inc(state.implausible_samples - refused)
            est = estimate(state, now, self.params)
            if est is None:
                continue
            key = (est.people, est.low, est.high, est.confidence, tuple(est.flags))
            if self._sent.get(site) == key:
                continue
            self._sent[site] = key
            emitted = datetime.now(UTC)
            out.append(
                FusedOccupancyV1(
                    site=site,
                    people=est.people,
                    low=est.low,
                    high=est.high,
                    wifi_clients=est.wifi_clients,
                    camera_people=est.camera_people,
                    people_per_client=est.people_per_client,
                    capacity=state.capacity,
                    degraded=est.degraded,
                    stale_sensors=est.stale_sensors,
                    source=est.source,
                    confidence=est.confidence,
                    flags=est.flags,
                    as_of=state.wifi_as_of or emitted,
                    emitted_at=emitted,
                )
            )
        EMITTED.inc(len(out))
        return out

    async def load(self, conn: psycopg.AsyncConnection) -> int:
        cur = await conn.execute("SELECT site, ratio, variance, samples FROM fusion_calibration")
        rows = await cur.fetchall()
        for site, ratio, variance, samples in rows:
            self._state(str(site)).calibration = Calibration(ratio, variance, samples)
        return len(rows)

    async def save(self, conn: psycopg.AsyncConnection) -> int:
        sites = sorted(self._dirty_calibration)
        cals = [c for c in (self.sites[s].calibration for s in sites) if c is not None]
        if not cals:
            return 0
        await conn.execute(
            SAVE_CALIBRATION,
            (sites, [c.ratio for c in cals], [c.variance for c in cals], [c.samples for c in cals]),
        )
        self._dirty_calibration.clear()
        return len(sites)
