"""Security primitives: sealed visit context, CSRF tokens, redirect checks, rate limits.

The visit context (controller parameters, including a raw MAC when a controller such as
UniFi needs it back to authorise the guest) is never stored on the server: it is sealed
with AES-GCM into an HttpOnly cookie, so nothing raw is persisted and nothing can be forged.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAX_URL = 2048
MAX_PARAM = 256


class PortalError(Exception):
    """A request the portal refuses; ``key`` names the message shown on the error page."""

    def __init__(self, key: str, status: int = 400, detail: str = "") -> None:
        super().__init__(f"{key}: {detail}" if detail else key)
        self.key = key
        self.status = status
        self.detail = detail


class Sealer:
    """Authenticated encryption of small JSON contexts with an expiry."""

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"tp.portal.seal\x00" + secret).digest())
        self._csrf_key = hashlib.sha256(b"tp.portal.csrf\x00" + secret).digest()

    def seal(self, payload: dict[str, Any], ttl_s: int) -> str:
        nonce = os.urandom(12)
        body = json.dumps({"exp": int(time.time()) + ttl_s, "p": payload}).encode()
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, body, None)).decode()

    def unseal(self, token: str | None) -> dict[str, Any]:
        if not token or len(token) > 4000:
            raise PortalError("session_missing", 400)
        try:
            raw = base64.urlsafe_b64decode(token.encode())
            body = json.loads(self._aead.decrypt(raw[:12], raw[12:], None))
        except (ValueError, InvalidTag):
            raise PortalError("session_invalid", 400) from None
        if body["exp"] < time.time():
            raise PortalError("session_expired", 400)
        payload: dict[str, Any] = body["p"]
        return payload

    def csrf_token(self, portal_session: str) -> str:
        return hmac.new(self._csrf_key, portal_session.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, portal_session: str, token: str | None) -> None:
        if not token or not hmac.compare_digest(self.csrf_token(portal_session), token):
            raise PortalError("csrf", 403)


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Shell-style host patterns (``*.network-auth.com``); an empty list allows any host."""
    host = host.lower().rstrip(".")
    return not patterns or any(fnmatch.fnmatchcase(host, p.lower()) for p in patterns)


def safe_url(url: str | None, allowed_hosts: list[str], what: str = "redirect") -> str:
    """Return ``url`` if it is a plain absolute http(s) URL to an allowed host, else raise.

    Refuses other schemes (javascript:, data:), credentials (``user@host`` phishing),
    protocol-relative and backslash tricks, control characters and over-long URLs.
    """
    if not url or len(url) > MAX_URL:
        raise PortalError("bad_redirect", 400, f"{what} missing or too long")
    if any(ord(c) < 0x21 or c == "\\" for c in url):
        raise PortalError("bad_redirect", 400, f"{what} has forbidden characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise PortalError("bad_redirect", 400, f"{what} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PortalError("bad_redirect", 400, f"{what} must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise PortalError("bad_redirect", 400, f"{what} must not carry credentials")
    if port is not None and not 0 < port < 65536:
        raise PortalError("bad_redirect", 400, f"{what} has a bad port")
    if not host_allowed(parts.hostname, allowed_hosts):
        raise PortalError("bad_redirect", 400, f"{what} host is not allowed")
    return url


def bounded(value: str | None, name: str, limit: int = MAX_PARAM, required: bool = True) -> str:
    """A request parameter within ``limit`` characters (and present if ``required``)."""
    if value is None or value == "":
        if required:
            raise PortalError("bad_params", 400, f"{name} is missing")
        return ""
    if len(value) > limit:
        raise PortalError("too_long", 400, f"{name} is longer than {limit}")
    return value


class RateLimiter:
    """Token bucket per client key; bounded memory (least recently seen keys are evicted)."""

    def __init__(self, per_minute: int, burst: int | None = None, max_keys: int = 100_000):
        self.rate = per_minute / 60.0
        self.burst = float(burst or max(5, per_minute // 2))
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
