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
    """Callable ``(mac, event_time) -> Pseudonym`` for :class:`WifiSessionGenerator`."""

    def __init__(self, state_dir: Path, scope: str = SIM_KEY_SCOPE) -> None:
        self._now = datetime.now(UTC)
        self._pseudonymiser = Pseudonymiser(
            KeyStore.in_dir(state_dir, scope=scope, clock=lambda: self._now)
        )

    def __call__(self, mac: bytes, when: datetime) -> Pseudonym:
        self._now = when
        return self._pseudonymiser.pseudonymise(mac)
