"""The alert engine: feeds observations to the rules and applies their signals.

It owns no transport: the runtime handlers (``stream/alerts/app.py``) hand it decoded
messages and a ``publish`` callable, which keeps the whole decision path testable against
a real PostgreSQL without Kafka. Every change it makes is published as
:class:`~schemas.stream_out.AlertChangedV1` for the live feeds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from device_configs import DeviceConfigs
from schemas.camera import CameraLoudNoiseV1, CameraMetadataV1, CameraOnvifEventV1
from schemas.device import AvailabilityV1, DeviceHeartbeatV1
from schemas.stream_out import AlertChangedV1, FusedOccupancyV1
from stream.alerts import rules
from stream.alerts.baseline import BaselineSource
from stream.alerts.notify import Notifier
from stream.alerts.store import AlertStore, StoredAlert

log = logging.getLogger(__name__)

SIGNALS = Counter("tp_alert_signals_total", "Rule signals", ["type", "action"])

Publish = Callable[[AlertChangedV1], Awaitable[None]]

#: A still-firing rule re-raises on every observation; the stored alert is refreshed at
#: most this often so an hour of overcrowding is not 3,600 database writes and feed events.
RETRIGGER_EVERY = timedelta(seconds=30)


def utc_now() -> datetime:
    return datetime.now(UTC)


class _SiteRules:
    def __init__(self, site: str, capacity: int, configs: DeviceConfigs) -> None:
        cfg = configs.alerting.rules_for(site)
        self.high = rules.OccupancyHigh(site, capacity, cfg.occupancy_high)
        self.rise = rules.RapidRise(site, capacity, cfg.rapid_rise)
        self.anomaly = rules.Anomaly(site, cfg.anomaly)
        self.enabled = cfg


class AlertEngine:
    def __init__(
        self,
        configs: DeviceConfigs,
        store: AlertStore,
        publish: Publish,
        notifier: Notifier | None = None,
        baseline: BaselineSource | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._configs = configs
        self._store = store
        self._publish = publish
        self._notifier = notifier
        self._baseline = baseline
        self._clock = clock
        self._sites = {s.id: _SiteRules(s.id, s.capacity_persons, configs) for s in configs.sites}
        defaults = configs.alerting.defaults
        self._devices = rules.device_liveness(defaults.device_offline)
        self._streams = rules.stream_liveness(defaults.camera)
        self._noise = rules.LoudNoise(defaults.loud_noise)
        self._escalate_after = timedelta(seconds=configs.alerting.escalation_after_s)
        self._last_refresh: dict[tuple[str, str], datetime] = {}

    async def on_occupancy(self, update: FusedOccupancyV1) -> None:
        site = self._sites.get(update.site)
        if site is None:
            log.warning("occupancy for unknown site %s ignored", update.site)
            return
        at = update.as_of
        cfg = site.enabled
        candidates = [
            site.high.observe(update.people, at) if cfg.occupancy_high.enabled else None,
            site.rise.observe(update.people, at) if cfg.rapid_rise.enabled else None,
        ]
        if cfg.anomaly.enabled and self._baseline and update.wifi_clients is not None:
            history = await self._baseline.values(update.site, at)
            candidates.append(site.anomaly.observe(update.wifi_clients, history, at))
        for signal in candidates:
            if signal:
                await self.apply(signal)

    async def on_heartbeat(self, event: DeviceHeartbeatV1) -> None:
        await self._maybe(self._devices.heard(event.device, event.site, self._arrival(event)))

    async def on_availability(self, event: AvailabilityV1) -> None:
        at = self._arrival(event)
        if event.data.state == "offline":
            reason = event.data.reason or "offline"
            await self.apply(self._devices.offline(event.device, event.site, at, reason))
        else:
            await self._maybe(self._devices.heard(event.device, event.site, at))

    async def on_camera_metadata(self, event: CameraMetadataV1) -> None:
        await self._maybe(self._streams.heard(event.device, event.site, self._arrival(event)))

    async def on_camera_event(self, event: CameraOnvifEventV1 | CameraLoudNoiseV1) -> None:
        if isinstance(event, CameraLoudNoiseV1):
            d = event.data
            await self._maybe(
                self._noise.observe(
                    event.device, event.site, d.rise_db, d.peak_dbfs, self._arrival(event)
                )
            )
        elif event.data.kind == "tamper" and event.data.active is not None:
            camera_rule = self._configs.alerting.rules_for(event.site).camera
            await self.apply(
                rules.tamper(
                    event.device, event.site, event.data.active, self._arrival(event), camera_rule
                )
            )

    async def tick(self) -> None:
        """Timeouts: silent devices and streams, quiet-again microphones."""
        now = self._clock()
        for signal in (
            *self._devices.check(now),
            *self._streams.check(now),
            *self._noise.check(now),
        ):
            await self.apply(signal)

    async def escalate(self) -> list[StoredAlert]:
        escalated = await self._store.escalate_due(self._clock(), self._escalate_after)
        for stored in escalated:
            await self._announce(stored, "escalated")
        return escalated

    async def apply(self, signal: rules.Signal) -> StoredAlert | None:
        SIGNALS.labels(signal.type, signal.action).inc()
        key = (signal.originator, signal.type)
        if signal.action == "clear":
            self._last_refresh.pop(key, None)
            stored = await self._store.clear_by_rule(signal.originator, signal.type, self._clock())
            if stored:
                await self._announce(stored, "cleared")
            return stored
        last = self._last_refresh.get(key)
        if last is not None and signal.at - last < RETRIGGER_EVERY:
            return None
        self._last_refresh[key] = signal.at
        # Stored times are the platform's clock (when operators were told), so escalation
        # timers run on wall time even for replayed or simulated event times; when the
        # condition was observed stays in the details.
        stored = await self._store.raise_alert(
            signal.originator,
            signal.site,
            signal.type,
            signal.severity,
            self._clock(),
            {**signal.details, "observed_at": signal.at.isoformat()},
        )
        await self._announce(stored, "raised" if stored.alert.trigger_count == 1 else None)
        return stored

    async def _maybe(self, signal: rules.Signal | None) -> None:
        if signal:
            await self.apply(signal)

    async def _announce(self, stored: StoredAlert, notify_reason: str | None) -> None:
        message = stored.changed(self._clock())
        await self._publish(message)
        if notify_reason and self._notifier:
            self._notifier.submit(message.alert.model_dump(mode="json"), notify_reason)

    def _arrival(
        self,
        event: DeviceHeartbeatV1
        | AvailabilityV1
        | CameraMetadataV1
        | CameraOnvifEventV1
        | CameraLoudNoiseV1,
    ) -> datetime:
        """When we heard it: the gateway's ingest time (wall clock), else now."""
        return event.ingest_time or self._clock()
