"""Promo selection: which cards a visitor sees, in which A/B variant, in which language.

Promos come from the database (managed by the admin API). Attraction promos advertise one
of the HCMC sites and are ranked by great-circle distance from the site the visitor is at,
so each splash page shows what is actually nearby.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from device_configs.models import Site

MAX_ATTRACTIONS = 3
MAX_CARDS = 6


@dataclass(frozen=True)
class Promo:
    id: str
    kind: str
    variants: Mapping[str, Mapping[str, Mapping[str, str]]]  # variant → lang → title/body
    url: str | None = None
    site_ref: str | None = None
    image: str | None = None
    sites: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    priority: int = 0
    active: bool = True


@dataclass(frozen=True)
class Card:
    promo: str
    variant: str
    kind: str
    title: str
    body: str
    image: str | None
    distance_km: float | None


def distance_km(a: Site, b: Site) -> float:
    """Haversine distance; good to metres at city scale, which is all a card needs."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def pick_variant(promo: Promo, portal_session: str) -> str:
    """Deterministic per visit, so reloading or switching language keeps the same variant."""
    keys = sorted(promo.variants)
    digest = hashlib.sha256(f"{portal_session}:{promo.id}".encode()).digest()
    return keys[int.from_bytes(digest[:4], "big") % len(keys)]


def is_live(promo: Promo, site: str, lang: str, now: datetime) -> bool:
    return (
        promo.active
        and (not promo.sites or site in promo.sites)
        and (not promo.languages or lang in promo.languages)
        and (promo.starts_at is None or promo.starts_at <= now)
        and (promo.ends_at is None or now < promo.ends_at)
    )


def select_cards(
    promos: Iterable[Promo],
    site: Site,
    lang: str,
    now: datetime,
    portal_session: str,
    sites: Mapping[str, Site],
    _: Callable[..., str],
) -> list[Card]:
    """Nearest attractions first (up to 3), then events and the app by priority."""
    attractions: list[tuple[float, Promo]] = []
    others: list[Promo] = []
    for p in promos:
        if not is_live(p, site.id, lang, now):
            continue
        if p.kind == "attraction":
            ref = sites.get(p.site_ref or "")
            if ref is not None and ref.id != site.id:
                attractions.append((distance_km(site, ref), p))
        else:
            others.append(p)
    attractions.sort(key=lambda t: (t[0], t[1].id))
    others.sort(key=lambda p: (-p.priority, p.id))
    chosen: list[tuple[float | None, Promo]] = [(d, p) for d, p in attractions[:MAX_ATTRACTIONS]]
    chosen += [(None, p) for p in others]
    cards = []
    for dist, p in chosen[:MAX_CARDS]:
        variant = pick_variant(p, portal_session)
        text = _texts(p.variants[variant], lang)
        if p.kind == "attraction" and not text.get("title"):
            ref = sites[p.site_ref or ""]
            text = {"title": ref.name_vi if lang == "vi" else ref.name_en, "body": ""}
        body = text.get("body") or (
            _("promo.distance", km=f"{dist:.1f}") if dist is not None else ""
        )
        rounded = round(dist, 1) if dist is not None else None
        cards.append(Card(p.id, variant, p.kind, text.get("title", p.id), body, p.image, rounded))
    return cards


def _texts(by_lang: Mapping[str, Mapping[str, str]], lang: str) -> Mapping[str, str]:
    return by_lang.get(lang) or by_lang.get("en") or next(iter(by_lang.values()), {})


def default_promos(sites: Iterable[Site]) -> list[dict[str, Any]]:
    """Starter promos for a fresh deployment: every site as an attraction, the app, an event."""
    rows: list[dict[str, Any]] = [
        {
            "id": f"site-{s.id}",
            "kind": "attraction",
            "site_ref": s.id,
            "url": f"https://www.openstreetmap.org/?mlat={s.lat}&mlon={s.lon}#map=17/{s.lat}/{s.lon}",
            "variants": {"a": {}},
        }
        for s in sites
    ]
    rows.append(
        {
            "id": "city-app",
            "kind": "app",
            "url": "https://visithcmc.vn/",
            "priority": 10,
            "variants": {
                "a": {
                    "en": {
                        "title": "Visit HCMC app",
                        "body": "Maps, tickets and live crowd levels.",
                    },
                    "vi": {
                        "title": "Ứng dụng Visit HCMC",
                        "body": "Bản đồ, vé và mức đông đúc trực tiếp.",
                    },
                },
                "b": {
                    "en": {
                        "title": "Skip the queues",
                        "body": "See how busy each site is right now.",
                    },
                    "vi": {
                        "title": "Tránh xếp hàng",
                        "body": "Xem nơi nào đang đông ngay lúc này.",
                    },
                },
            },
        }
    )
    return rows
