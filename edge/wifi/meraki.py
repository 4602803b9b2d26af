"""Cisco Meraki Scanning API v3 receiver: observations of nearby clients → presence events.

Meraki's protocol: the dashboard first GETs the URL and expects the validator string as the
body; then it POSTs (about once a minute per network) JSON ``{"version": "3.0", "secret":
..., "type": "WiFi", "data": {"networkId": ..., "observations": [...]}}``. A POST with a
wrong secret is refused (403) and counted; a malformed body is a 400 with a JSON reason.

Every usable observation becomes a ``wifi.presence`` event (footfall, probing phones
included) and, through :class:`~edge.wifi.presence_sessions.PresenceSessions`, session
events, so Meraki clients count in occupancy like RADIUS and hostapd ones. A POST's events
are committed to the outbox in one transaction before the 200 is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import ValidationError

from core.privacy import InvalidMac
from edge.wifi.adapter import SourceStats
from edge.wifi.inventory import Inventory
from edge.wifi.presence_sessions import PresenceSessions
from edge.wifi.sessions import KEY_ROTATION, EventEmitter
from schemas.envelope import EventBase
from schemas.presence import WifiPresenceData, WifiPresenceV1

log = logging.getLogger(__name__)

#: Meraki batches are ~1 minute of a network's clients; far below this.
MAX_BODY = 8 * 1024 * 1024


#: What one malformed observation can raise; it is counted and skipped, never a 5xx for the
#: whole POST (Meraki re-posts after a 5xx, so one bad record used to lose every other one).
#: OverflowError: ``"nearestApRssi": 1e999`` is valid JSON for infinity.
_BAD_OBSERVATION = (KeyError, TypeError, ValueError, AttributeError, OverflowError, ValidationError)


class MerakiScanningAdapter:
    name = "meraki"

    def __init__(
        self,
        emitter: EventEmitter,
        inventory: Inventory,
        host: str,
        port: int,
        path: str,
        validator: str,
        secret: str | None,
        sessions: Literal["associated", "all", "none"] = "associated",
        session_timeout_s: float = 300.0,
    ) -> None:
        self.emitter = emitter
        self.inventory = inventory
        self.host = host
        self.port = port
        self.path = path
        self.validator = validator
        self.secret = secret
        self.stats = SourceStats("edge.wifi.meraki")
        self.session_mode = sessions
        self.sessions = PresenceSessions(emitter, self.stats, session_timeout_s, "meraki")
        self._runner: web.AppRunner | None = None
        self._expiry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get(self.path, self._validate)
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)  # access logs would hold client IPs
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._expiry = asyncio.create_task(self._expire_loop(), name="meraki-session-expiry")
        log.info("Meraki scanning receiver on http://%s:%d%s", self.host, self.port, self.path)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._expiry:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        self._emit(self.sessions.close_all())

    async def _expire_loop(self) -> None:
        period = min(10.0, self.sessions.timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            try:
                self._emit(self.sessions.expire())
            except Exception:  # the outbox failing must not end expiry for good
                self.stats.drop("outbox_error")
                log.exception("could not write Meraki session stops to the outbox")

    def key_rotated(self) -> None:
        """Stop every sighting session at the key rotation (reason Key-Rotation); the next
        sighting of each client (about a minute later) starts one under the new pseudonym."""
        self._emit(self.sessions.close_all(KEY_ROTATION))

    def _emit(self, events: list[EventBase]) -> None:
        if events:
            self.emitter.emit_many(events, self.stats)

    async def _validate(self, request: web.Request) -> web.Response:
        return web.Response(text=self.validator, content_type="text/plain")

    async def _receive(self, request: web.Request) -> web.Response:
        self.stats.packet()
        try:
            body = await request.json()
        except ValueError:
            return self._bad("invalid_json", 400)
        except RecursionError:  # valid JSON nested deeper than Python's parser goes
            return self._bad("too_deep", 400)
        if not isinstance(body, dict):
            return self._bad("not_an_object", 400)
        if self.secret is not None and not hmac.compare_digest(
            str(body.get("secret", "")).encode(), self.secret.encode()
        ):
            return self._bad("bad_secret", 403)
        if str(body.get("version", "")).split(".")[0] != "3":
            return self._bad("unsupported_version", 400)
        data = body.get("data")
        observations = data.get("observations") if isinstance(data, dict) else None
        if not isinstance(observations, list):
            return self._bad("missing_observations", 400)
        events: list[EventBase] = []
        accepted = sum(self._observation(o, events) for o in observations)
        try:
            self._emit(events)
        except Exception:  # Meraki re-posts after a 5xx; nothing is acknowledged unstored
            self.stats.drop("outbox_error")
            log.exception("could not write %d Meraki events to the outbox", len(events))
            return web.json_response({"error": "outbox_error"}, status=503)
        return web.json_response({"accepted": accepted, "received": len(observations)})

    def _observation(self, obs: Any, out: list[EventBase]) -> bool:
        try:
            latest = obs["latestRecord"]
            ap = self.inventory.ap_by_bssid(str(latest["nearestApMac"]))
            if ap is None:
                self.stats.drop("unknown_ap")
                return False
            pseudo = self.emitter.pseudonymiser.pseudonymise(str(obs["clientMac"]))
            seen = datetime.fromisoformat(str(latest["time"]).replace("Z", "+00:00"))
            seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
            rssi = latest.get("nearestApRssi")
            event = WifiPresenceV1(
                site=ap.site,
                device=self.emitter.device,
                source=self.stats.source,
                event_time=seen,
                data=WifiPresenceData(
                    client_id=pseudo.client_id,
                    ap=ap.id,
                    randomized_mac=pseudo.randomized,
                    rssi_dbm=int(rssi) if rssi is not None else None,
                    ssid=(str(obs["ssid"])[:32] if obs.get("ssid") else None),
                ),
            )
        except InvalidMac:
            self.stats.drop("invalid_mac")
            return False
        except _BAD_OBSERVATION:
            self.stats.drop("invalid_observation")
            return False
        out.append(event)
        if self.session_mode == "all" or (self.session_mode == "associated" and event.data.ssid):
            out += self.sessions.sighting(
                ap.site, ap.id, pseudo, seen, event.data.ssid, event.data.rssi_dbm
            )
        return True

    def _bad(self, reason: str, status: int) -> web.Response:
        self.stats.drop(reason)
        return web.json_response({"error": reason}, status=status)
