"""The pseudonymisation key rotates at 04:00 by the timer, even if nothing asks for it,
and owners of open sessions are told so they can split them at the boundary."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from core.privacy.keystore import KeyStore
from core.privacy.rotation import rotate_on_schedule


async def test_timer_rotates_at_the_boundary_without_any_use(tmp_path: Path) -> None:
    start = datetime.now(UTC)
    probe = KeyStore(tmp_path / "probe.key")
    boundary = probe.next_rotation(start)
    offset = boundary - start - timedelta(seconds=1.0)  # 1 s before 04:00 local

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    store = KeyStore(tmp_path / "keys" / "hcmc.key", scope="hcmc", clock=clock)
    rotated: list[date] = []
    done = asyncio.Event()

    def on_rotate(day: date) -> None:
        rotated.append(day)
        done.set()

    task = asyncio.create_task(rotate_on_schedule(store, [on_rotate]))
    try:
        await asyncio.sleep(0.2)
        before = json.loads(store.path.read_text())
        old_key = store.current_key()
        await asyncio.wait_for(done.wait(), 10)
        after = json.loads(store.path.read_text())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert rotated == [store.key_day()]
    assert after != before  # the file holds the new day's key; the old one is gone
    assert store._key and bytes(store._key) != old_key
