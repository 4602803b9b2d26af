"""The Wi-Fi edge agent: sources in, contract events out through the durable MQTT link.

One asyncio loop runs every source adapter; the MQTT link runs in its own thread; the
``/metrics`` + ``/healthz`` server in another. Adapters are built from :data:`ADAPTERS`, so a
new vendor is one module plus one line there.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from core.observability import Health, ObservabilityServer
from core.privacy import KeyStore, Pseudonymiser
from core.privacy.rotation import rotate_on_schedule
from device_configs.loader import load_device_configs
from device_configs.wifi import load_secrets, resolve_secret
from edge.link import LinkIdentity, MqttLink
from edge.wifi.adapter import EventSink, SourceAdapter
from edge.wifi.config import WifiEdgeConfig
from edge.wifi.inventory import Inventory
from edge.wifi.radius import RadiusAccountingAdapter
from edge.wifi.sessions import EventEmitter
from schemas.topics import DeviceKind

log = logging.getLogger(__name__)

AdapterFactory = Callable[["WifiAgent"], SourceAdapter | None]


def _radius(agent: WifiAgent) -> SourceAdapter | None:
    c = agent.cfg.radius
    if not c.enabled:
        return None
    return RadiusAccountingAdapter(
        agent.emitter,
        agent.inventory,
        c.host,
        c.port,
        max_skew_s=c.max_clock_skew_s,
        rcvbuf=c.receive_buffer_bytes,
    )


def _syslog(agent: WifiAgent) -> SourceAdapter | None:
    c = agent.cfg.syslog
    if not c.enabled:
        return None
    from edge.wifi.syslog import SyslogAdapter  # only when enabled

    return SyslogAdapter(agent.emitter, agent.inventory, c.host, c.port)


def _meraki(agent: WifiAgent) -> SourceAdapter | None:
    c = agent.cfg.meraki
    if not c.enabled:
        return None
    # Imported only when enabled: aiohttp alone is ~12 MB of a site box's RSS.
    from edge.wifi.meraki import MerakiScanningAdapter

    secret = resolve_secret(c.secret, agent.secrets) if c.secret else None
    return MerakiScanningAdapter(
        agent.emitter,
        agent.inventory,
        c.host,
        c.port,
        c.path,
        c.validator,
        secret,
        sessions=c.sessions,
        session_timeout_s=c.session_timeout_s,
    )


#: Source adapters by config section name.
ADAPTERS: dict[str, AdapterFactory] = {"radius": _radius, "syslog": _syslog, "meraki": _meraki}


def _default_device_configs() -> Path:
    """The central settings' device configs directory (imported only when needed:
    pydantic-settings costs ~4 MB and a site box's config names the directory)."""
    from core.settings import get_settings

    return get_settings().device_configs


class WifiAgent:
    def __init__(self, cfg: WifiEdgeConfig, sink: EventSink | None = None) -> None:
        self.cfg = cfg
        self.secrets = load_secrets(cfg.secrets_file)
        configs = load_device_configs(cfg.device_configs or _default_device_configs())
        self.inventory = Inventory(configs, cfg.served_sites(), self.secrets)
        keys = KeyStore.in_dir(
            cfg.state_dir,
            cfg.deployment,
            rotate_at=cfg.key_rotate_at,
            tz=ZoneInfo(cfg.timezone),
        )
        self.link: MqttLink | None = None
        if sink is None:
            self.link = MqttLink(
                cfg.link_config(),
                LinkIdentity(cfg.site, cfg.device, DeviceKind.WIFI),
                stats=self._stats,
                software="tourpulse-edge-wifi",
            )
            sink = self.link
        self.emitter = EventEmitter(sink, Pseudonymiser(keys), cfg.device)
        self.adapters: list[SourceAdapter] = [
            a for a in (factory(self) for factory in ADAPTERS.values()) if a is not None
        ]
        self.observability: ObservabilityServer | None = None
        self._rotation: asyncio.Task[None] | None = None

    def key_rotated(self, day: date) -> None:
        """Split every open session at the rotation instant (see EventEmitter)."""
        keys = self.emitter.pseudonymiser.key_store
        at = datetime.combine(day, keys.rotate_at, tzinfo=keys.tz)
        split = self.emitter.split_at_rotation(at)
        for adapter in self.adapters:
            rotated = getattr(adapter, "key_rotated", None)
            if rotated is not None:
                rotated()
        log.info("key rotated (key day %s): %d open sessions split", day, split)

    def _stats(self) -> tuple[dict[str, float], dict[str, int]]:
        rates = {a.name: a.stats.rate() for a in self.adapters}
        errors = {f"{a.name}.{r}": n for a in self.adapters for r, n in a.stats.drops.items()}
        return rates, errors

    def health(self) -> Health:
        connected = self.link.connected if self.link else True
        details: dict[str, object] = {"mqtt": "connected" if connected else "disconnected"}
        if self.link:
            details["queue_depth"] = self.link.outbox.depth()
            details["dropped_total"] = self.link.outbox.dropped
        for a in self.adapters:
            details[a.name] = {"packets": a.stats.packets, "events": a.stats.events}
            kernel_drops = getattr(a, "kernel_drops", None)
            if kernel_drops is not None:
                details[a.name]["udp_drops"] = kernel_drops()  # type: ignore[index]
        # Disconnected is still healthy: the outbox is doing its job. Unhealthy = not running.
        return Health(True, details)

    async def start(self) -> None:
        if self.link:
            self.link.start()
        for adapter in self.adapters:
            await adapter.start()
        # On a timer, not on the next use: the old key is destroyed at 04:00 even when the
        # APs are silent, and sessions are split there, not at their next report.
        self._rotation = asyncio.create_task(
            rotate_on_schedule(self.emitter.pseudonymiser.key_store, [self.key_rotated]),
            name="edge-wifi-key-rotation",
        )
        self.observability = ObservabilityServer(
            self.cfg.metrics_port, self.health, host=self.cfg.metrics_host
        ).start()

    async def stop(self) -> None:
        if self._rotation is not None:
            self._rotation.cancel()
            await asyncio.gather(self._rotation, return_exceptions=True)
        for adapter in self.adapters:
            await adapter.stop()
        if self.observability:
            self.observability.stop()
        if self.link:
            self.link.stop()

    async def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM, then stop cleanly (the link says "offline")."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        log.info(
            "edge wifi agent %s up: sources %s, metrics on %s",
            self.cfg.device,
            [a.name for a in self.adapters],
            self.observability.url if self.observability else "-",
        )
        try:
            await stop.wait()
        finally:
            await self.stop()
