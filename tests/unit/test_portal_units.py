"""Pure unit tests: languages, catalogues, URL checks, rate limits, sealing, openNDS crypto."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.portal import i18n
from api.portal.controllers.opennds import decrypt_query, encrypt_query, parse_fields, rhid
from api.portal.controllers.rfc8908 import captive_status
from api.portal.promos import Promo, pick_variant, select_cards
from api.portal.security import PortalError, RateLimiter, Sealer, safe_url
from core.settings import DEVICE_CONFIG_DIR
from device_configs.loader import load_device_configs

TEMPLATES = Path(i18n.__file__).parent / "templates"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        ("fr-FR,fr;q=0.9", "en"),
        ("fr;q=1, ja;q=0.5", "ja"),
        ("zh-TW,zh;q=0.9", "zh-Hans"),
        ("zh-CN", "zh-Hans"),
        ("en;q=0.2, ko;q=0.8", "ko"),
        ("ko;q=0, ja", "ja"),
        ("en;q=abc, vi", "vi"),
        ("x" * 10_000, "en"),
    ],
)
def test_negotiate(header: str | None, expected: str) -> None:
    assert i18n.negotiate(header) == expected


def test_every_template_key_is_translated_in_every_language() -> None:
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"_\('([a-z_.]+[a-z])'[,)]", path.read_text()))
    used |= {
        f"error.{k}"
        for k in (
            "session_missing",
            "session_invalid",
            "session_expired",
            "csrf",
            "bad_redirect",
            "bad_params",
            "too_long",
            "rate_limited",
            "already_granted",
            "terms_required",
            "not_found",
            "controller_failed",
            "not_configured",
        )
    }
    used |= {"purpose.network_access", "purpose.marketing", "promo.distance"}
    english = set(i18n.catalogue("en"))
    for tag in i18n.TAGS:
        cat = i18n.catalogue(tag)
        assert used <= set(cat), f"{tag} lacks {sorted(used - set(cat))}"
        assert set(cat) == english, f"{tag} differs from en: {sorted(set(cat) ^ english)}"
        for key, text in cat.items():  # same placeholders as English, or format() would fail
            assert re.findall(r"{\w+}", text) == re.findall(r"{\w+}", i18n.catalogue("en")[key])
    assert i18n.translator("ja")("promo.distance", km="1.2") == "1.2 km 先"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "//evil.example/",
        "http:///x",
        "http://user:pw@host/",
        "http://host\\@evil/",
        "http://ho st/",
        "ftp://host/",
        "http://host:99999/",
        "",
        "http://" + "a" * 3000,
    ],
)
def test_safe_url_refuses(url: str) -> None:
    with pytest.raises(PortalError):
        safe_url(url, [])


def test_safe_url_allow_list() -> None:
    assert safe_url("https://n1.network-auth.com/splash/grant", ["*.network-auth.com"])
    with pytest.raises(PortalError):
        safe_url("https://network-auth.com.evil.example/", ["*.network-auth.com"])


def test_rate_limiter_refills_and_bounds_memory() -> None:
    limiter = RateLimiter(per_minute=60, burst=2, max_keys=3)
    assert [limiter.allow("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("a", now=1.0)  # one token per second
    for key in "bcde":
        limiter.allow(key, now=2.0)
    assert len(limiter._buckets) == 3


def test_sealer_rejects_tampering_and_expiry() -> None:
    sealer = Sealer(b"k" * 32)
    token = sealer.seal({"ps": "x"}, ttl_s=60)
    assert sealer.unseal(token) == {"ps": "x"}
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    for bad in (flipped, "garbage", None, Sealer(b"other").seal({"ps": "x"}, 60)):
        with pytest.raises(PortalError):
            sealer.unseal(bad)
    with pytest.raises(PortalError, match="session_expired"):
        sealer.unseal(sealer.seal({"ps": "x"}, ttl_s=-1))
    with pytest.raises(PortalError):
        sealer.check_csrf("ps1", sealer.csrf_token("ps2"))


def test_opennds_roundtrip_and_tok() -> None:
    text = "clientip=10.0.0.2, clientmac=aa:bb:cc:dd:ee:ff, hid=abcd, gatewayaddress=10.0.0.1:2050"
    fas = encrypt_query(text, "0123456789abcdef", "1234567890")
    assert decrypt_query(fas, "0123456789abcdef", "1234567890") == text
    assert parse_fields(text)["gatewayaddress"] == "10.0.0.1:2050"
    # PHP: hash('sha256', $hid.$key)
    assert rhid("abcd", "1234567890") == hashlib.sha256(b"abcd1234567890").hexdigest()


def test_captive_status_json() -> None:
    now = datetime(2025, 7, 1, tzinfo=UTC)
    doc = captive_status("http://p/portal/x", "http://p/w", None, now)
    assert doc == {
        "captive": True,
        "user-portal-url": "http://p/portal/x",
        "venue-info-url": "http://p/w",
    }
    later = datetime(2025, 7, 1, 1, tzinfo=UTC)
    doc = captive_status("u", "v", later, now)
    assert doc["captive"] is False and doc["seconds-remaining"] == 3600


def test_nearest_attractions_first_and_stable_variants() -> None:
    configs = load_device_configs(DEVICE_CONFIG_DIR)
    sites = {s.id: s for s in configs.sites}
    promos = [
        Promo(id=f"site-{s}", kind="attraction", site_ref=s, variants={"a": {}}) for s in sites
    ]
    promos.append(
        Promo(
            id="ab",
            kind="event",
            variants={"a": {"en": {"title": "A"}}, "b": {"en": {"title": "B"}}},
        )
    )
    now = datetime.now(UTC)
    cards = select_cards(
        promos, sites["ben-thanh-market"], "en", now, "f" * 32, sites, i18n.translator("en")
    )
    attractions = [c for c in cards if c.kind == "attraction"]
    assert len(attractions) == 3 and "site-ben-thanh-market" not in [c.promo for c in cards]
    distances = [c.distance_km for c in attractions]
    assert distances == sorted(distances) and all(d is not None and d < 3 for d in distances)
    variants = {pick_variant(promos[-1], f"{i:032x}") for i in range(200)}
    assert variants == {"a", "b"}
    assert pick_variant(promos[-1], "1" * 32) == pick_variant(promos[-1], "1" * 32)
