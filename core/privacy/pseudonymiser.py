"""Turn a client MAC into the pseudonymous id that is all the platform ever sees.

id = first 16 bytes of HMAC-SHA256(key of the day, domain tag + 6 MAC bytes), as 32 hex
characters. The domain tag keeps these ids unrelated to any other HMAC made with the key.
"""

from __future__ import annotations

import hmac
from typing import NamedTuple

from core.privacy.keystore import KeyStore
from core.privacy.mac import normalise_mac

_DOMAIN = b"tourpulse.client.v1\x00"
_TOKEN_DOMAIN = b"tourpulse.token.v1\x00"
ID_HEX_CHARS = 32


class Pseudonym(NamedTuple):
    """What an adapter puts in an event instead of the MAC."""

    client_id: str
    randomized: bool


class Pseudonymiser:
    """Keyed, rotating MAC pseudonyms; share one instance per process (it caches the key)."""

    def __init__(self, key_store: KeyStore) -> None:
        self.key_store = key_store

    def client_id(self, mac: str | bytes) -> str:
        """32 hex chars; equal for equal MACs on the same key day, unlinkable across days.

        Raises :class:`core.privacy.InvalidMac` (without the value in the message).
        """
        digest = hmac.digest(self.key_store.current_key(), _DOMAIN + normalise_mac(mac), "sha256")
        return digest.hex()[:ID_HEX_CHARS]

    def token(self, *parts: str | bytes) -> str:
        """32 hex chars keyed on the day's key for free text that may embed identifiers.

        Why hash the whole value instead of scrubbing patterns out of it: vendors build
        session ids from user names, IPs and MACs in spellings no pattern list covers
        (Aruba ``guest/10.20.1.99/<mac>``, a MAC run into hex digits). Parts are joined
        with their lengths, so ("ab", "c") and ("a", "bc") differ.
        """
        msg = bytearray(_TOKEN_DOMAIN)
        for part in parts:
            raw = part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
            msg += len(raw).to_bytes(4, "big") + raw
        digest = hmac.digest(self.key_store.current_key(), bytes(msg), "sha256")
        return digest.hex()[:ID_HEX_CHARS]

    def pseudonymise(self, mac: str | bytes) -> Pseudonym:
        """Pseudonym plus the randomised-MAC flag, from one parse of the address."""
        raw = normalise_mac(mac)
        return Pseudonym(self.client_id(raw), bool(raw[0] & 0x02))
