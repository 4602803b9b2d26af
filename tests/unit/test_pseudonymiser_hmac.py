"""The pseudonymiser's pad-based HMAC equals the standard library's, for every key size."""

from __future__ import annotations

import hmac
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from core.privacy import KeyStore, Pseudonymiser
from core.privacy.pseudonymiser import _DOMAIN, _TOKEN_DOMAIN


class _FixedKey(KeyStore):
    def __init__(self, key: bytes) -> None:
        super().__init__(Path("/nonexistent"))
        self.key = key

    def current_key(self) -> bytes:
        return self.key


@given(key=st.binary(min_size=1, max_size=200), mac=st.binary(min_size=6, max_size=6))
def test_client_id_is_hmac_sha256_of_the_mac(key: bytes, mac: bytes) -> None:
    expected = hmac.digest(key, _DOMAIN + mac, "sha256").hex()[:32]
    assert Pseudonymiser(_FixedKey(key)).client_id(mac) == expected


@given(key=st.binary(min_size=1, max_size=200), text=st.text(max_size=300))
def test_token_is_hmac_sha256_and_follows_a_new_key(key: bytes, text: str) -> None:
    store = _FixedKey(key)
    p = Pseudonymiser(store)
    raw = text.encode("utf-8", "surrogateescape")
    msg = _TOKEN_DOMAIN + len(raw).to_bytes(4, "big") + raw
    assert p.token(text) == hmac.digest(key, msg, "sha256").hex()[:32]
    store.key = key + b"!"  # rotation: a new key object
    assert p.token(text) == hmac.digest(key + b"!", msg, "sha256").hex()[:32]
