"""Client ids for simulated phones, made by the edge's own pseudonymiser.

The simulator must not have a scheme of its own: it runs :class:`core.privacy.Pseudonymiser`
exactly as the Wi-Fi agent does, only with the key store's clock following simulated time
(so keys rotate on simulated days) and a key scope of its own, so a simulator whose clock
is days away from the real one never rotates, and thereby destroys, a real agent's key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.privacy import KeyStore, Pseudonym, Pseudonymiser

#: Key scope of simulated deployments (``<data_dir>/keys/sim.key``).
SIM_KEY_SCOPE = "sim"


class SimulatedClockPseudonymiser:
    """Callable ``(mac, event_time) -> Pseudonym`` for :class:`WifiSessionGenerator`.

    A phone's pseudonym changes only with the key, and a session sends an event every few
    minutes for hours: each is computed once per key and kept until the key rotates. The
    HMAC per event was a tenth of the simulator's time, which the benchmarks' source spends
    on the cores it measures.
    """

    def __init__(self, state_dir: Path, scope: str = SIM_KEY_SCOPE) -> None:
        self._now = datetime.now(UTC)
        self._keys = KeyStore.in_dir(state_dir, scope=scope, clock=lambda: self._now)
        self._pseudonymiser = Pseudonymiser(self._keys)
        self._known: dict[bytes, Pseudonym] = {}
        self._known_key = b""

    def __call__(self, mac: bytes, when: datetime) -> Pseudonym:
        self._now = when
        key = self._keys.current_key()
        if key is not self._known_key:  # rotated: yesterday's pseudonyms are gone with it
            self._known.clear()
            self._known_key = key
        pseudonym = self._known.get(mac)
        if pseudonym is None:
            pseudonym = self._known[mac] = self._pseudonymiser.pseudonymise(mac)
        return pseudonym
