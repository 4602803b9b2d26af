"""Everything the portal holds for the life of the process, built in the router lifespan.

The portal opens its own small database pool and MQTT publisher rather than borrowing the
API's, so it can be mounted on any FastAPI app with one ``include_router`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from fastapi import FastAPI
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from api.portal.controllers.base import Adapter
from api.portal.controllers.meraki import MerakiAdapter
from api.portal.controllers.opennds import OpenNDSAdapter
from api.portal.controllers.rfc8908 import DirectAdapter
from api.portal.controllers.unifi import UniFiAdapter
from api.portal.events import FunnelPublisher
from api.portal.promos import Promo, default_promos
from api.portal.security import RateLimiter, Sealer
from api.portal.settings import PortalSettings
from api.portal.store import PortalStore
from api.portal.writer import LandingWriter
from core.privacy import KeyStore, Pseudonymiser
from core.privacy.rotation import rotate_on_schedule
from core.settings import Settings, get_settings
from device_configs.loader import load_device_configs
from device_configs.models import Site
from schemas.envelope import EventBase

log = logging.getLogger(__name__)
TEMPLATE_DIR = Path(__file__).parent / "templates"
#: Promos change rarely; a few seconds of caching keeps them off the splash page's hot path.
PROMO_CACHE_S = 5.0
#: Back-off bounds for seeding the starter promos while the database is unreachable.
SEED_RETRY_S = (1.0, 30.0)
#: Start-up waits this long at most for the first seeding attempt (success or failure).
SEED_FIRST_WAIT_S = 10.0
_IP_DOMAIN = b"tourpulse.portal.ip.v1\x00"
PROMO_LOAD_ERRORS = Counter(
    "tp_portal_promo_load_errors_total", "Promo list reloads that failed (served stale)"
)
SEED_ERRORS = Counter("tp_portal_seed_errors_total", "Failed attempts to seed starter promos")


@dataclass
class PortalRuntime:
    settings: Settings
    portal: PortalSettings
    pool: AsyncConnectionPool
    store: PortalStore
    writer: LandingWriter
    publisher: FunnelPublisher | None
    pseudonymiser: Pseudonymiser
    sealer: Sealer
    limiter: RateLimiter
    sites: dict[str, Site]
    templates: jinja2.Environment
    image_dir: Path
    adapters: dict[str, Adapter] = field(default_factory=dict)
    #: Rendered splash pages by (site, language, promos and variants shown), with a CSRF
    #: placeholder: every phone gets the same page but for its token. Emptied whenever the
    #: promo list is reloaded, so admin edits show within PROMO_CACHE_S.
    pages: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = field(default_factory=dict)
    _promos: tuple[float, list[Promo]] = (0.0, [])
    _refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def promos(self) -> list[Promo]:
        """Cached promos; one refresh at a time, others keep serving the previous list."""
        stamp, cached = self._promos
        if time.monotonic() - stamp <= PROMO_CACHE_S:
            return cached
        if self._refreshing.locked() and stamp > 0:
            return cached
        async with self._refreshing:
            stamp, cached = self._promos
            if time.monotonic() - stamp > PROMO_CACHE_S:
                try:
                    cached = await self.store.promos()
                    self.pages.clear()
                except Exception as exc:  # DB outage: the splash still lets phones online
                    PROMO_LOAD_ERRORS.inc()
                    log.warning("loading promos failed, serving the last list: %s", exc)
                self._promos = (time.monotonic(), cached)
        return cached

    def invalidate_promos(self) -> None:
        self._promos = (0.0, [])
        self.pages.clear()

    def keyed(self, value: str) -> str:
        """Keyed hash (today's pseudonymisation key) of a non-MAC identifier, e.g. an IP."""
        key = self.pseudonymiser.key_store.current_key()
        return hmac.new(key, _IP_DOMAIN + value.encode(), hashlib.sha256).hexdigest()[:32]

    def emit(self, event: EventBase) -> None:
        if self.publisher is not None:
            self.publisher.publish(event)


def make_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def build_runtime(
    settings: Settings, portal: PortalSettings, pool: AsyncConnectionPool, publish: bool = True
) -> PortalRuntime:
    configs = load_device_configs(settings.device_configs)
    key_dir = portal.key_dir or settings.data_dir / "privacy"
    mqtt = portal.mqtt_client_settings(settings.mqtt_client_settings())
    publisher = FunnelPublisher(mqtt) if publish else None
    store = PortalStore(pool)
    return PortalRuntime(
        settings=settings,
        portal=portal,
        pool=pool,
        store=store,
        writer=LandingWriter(store),
        publisher=publisher,
        pseudonymiser=Pseudonymiser(KeyStore.in_dir(key_dir, scope=portal.key_scope)),
        sealer=Sealer(portal.secret.get_secret_value().encode()),
        limiter=RateLimiter(portal.rate_per_minute),
        sites={s.id: s for s in configs.sites},
        templates=make_templates(),
        image_dir=portal.image_dir or settings.data_dir / "portal-img",
        adapters={
            a.name: a for a in (MerakiAdapter(), OpenNDSAdapter(), UniFiAdapter(), DirectAdapter())
        },
    )


async def seed_until_done(runtime: PortalRuntime, first_try: asyncio.Event) -> None:
    """Seed the starter promos, retrying with back-off while the database is down.

    Runs in the background so the API (and the splash page, with no promos) serves during
    a database outage instead of failing to start; ``first_try`` is set after the first
    attempt so a healthy start-up serves its first page with the promos in place.
    """
    delay, ceiling = SEED_RETRY_S
    while True:
        try:
            seeded = await runtime.store.seed_promos(default_promos(runtime.sites.values()))
        except Exception as exc:
            first_try.set()
            SEED_ERRORS.inc()
            log.warning("seeding starter promos failed (retry in %.0f s): %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, ceiling)
            continue
        if seeded:
            log.info("seeded %d starter promos", seeded)
            runtime.invalidate_promos()
        first_try.set()
        return


@asynccontextmanager
async def portal_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the publisher (and a pool unless the API app has one); seed starter promos.

    Nothing here waits for PostgreSQL: the pool connects in the background and seeding
    retries until it succeeds, so the API starts during a database outage.
    """
    settings: Settings = getattr(app.state, "settings", None) or get_settings()
    portal: PortalSettings = getattr(app.state, "portal_settings", None) or PortalSettings()
    shared: AsyncConnectionPool | None = getattr(app.state, "pool", None)
    pool = shared or AsyncConnectionPool(
        settings.database_url, min_size=1, max_size=10, open=False, name="portal"
    )
    if shared is None:
        await pool.open(wait=False)
    runtime = build_runtime(settings, portal, pool)
    app.state.portal = runtime
    runtime.writer.start()
    first_try = asyncio.Event()
    seeding = asyncio.create_task(seed_until_done(runtime, first_try), name="portal-seed-promos")
    # The key is destroyed at 04:00 even if no phone lands at night (it rotated lazily).
    rotating = asyncio.create_task(
        rotate_on_schedule(runtime.pseudonymiser.key_store), name="portal-key-rotation"
    )
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first_try.wait(), SEED_FIRST_WAIT_S)
        yield None
    finally:
        seeding.cancel()
        rotating.cancel()
        await asyncio.gather(seeding, rotating, return_exceptions=True)
        await runtime.writer.close()
        if runtime.publisher is not None:
            runtime.publisher.close()
        if shared is None:
            await pool.close()
