"""Pseudonymisation at the edge: raw MAC addresses never leave this package's callers.

Usage (Wi-Fi agent, simulator, captive portal)::

    from core.privacy import KeyStore, Pseudonymiser

    pseudo = Pseudonymiser(KeyStore.in_dir(state_dir, scope="hcmc"))
    p = pseudo.pseudonymise("AA-BB-CC-DD-EE-FF")   # Pseudonym(client_id='3f…', randomized=False)
    pseudo.client_id("aa:bb:cc:dd:ee:ff")          # same id, same key day

Every process on an edge box that pseudonymises for the same city deployment must use the
same key path, so ids agree between sources.
"""

from core.privacy.keystore import DEFAULT_ROTATE_AT, DEFAULT_TZ, KeyStore, destroy_file
from core.privacy.mac import InvalidMac, is_locally_administered, normalise_mac
from core.privacy.pseudonymiser import ID_HEX_CHARS, Pseudonym, Pseudonymiser

__all__ = [
    "DEFAULT_ROTATE_AT",
    "DEFAULT_TZ",
    "ID_HEX_CHARS",
    "InvalidMac",
    "KeyStore",
    "Pseudonym",
    "Pseudonymiser",
    "destroy_file",
    "is_locally_administered",
    "normalise_mac",
]
