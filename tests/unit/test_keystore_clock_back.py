"""The key store's cached key follows an injected clock that goes back in time.

Why: the key is cached until the next rotation for speed; the simulator's clock replays
days out of order, and a cache checked only against its end handed an earlier day the
later day's key (sessions spanning 04:00 kept one pseudonym: found by test_simulator).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from core.privacy.keystore import KeyStore


def test_a_clock_that_goes_back_gets_that_days_key(tmp_path: Path) -> None:
    now = [datetime(2026, 3, 7, 12, 0, tzinfo=UTC)]
    store = KeyStore(tmp_path / "k.key", clock=lambda: now[0])
    later = store.current_key()
    assert store.loaded_day is not None and store.loaded_day.isoformat() == "2026-03-07"
    now[0] = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # the day before
    earlier = store.current_key()
    assert store.loaded_day.isoformat() == "2026-03-06"
    assert earlier != later
