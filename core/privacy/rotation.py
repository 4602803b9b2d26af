"""Rotate the pseudonymisation key on a timer, not on the next use.

:meth:`KeyStore.current_key` rotates lazily: a quiet process (the portal at night, an
agent whose APs are silent) would keep yesterday's key in memory, and on disk, long after
04:00, and the first event after the pause would still be pseudonymised with it. The timer
rotates at ``next_rotation()`` (destroying the old key at once) and then calls the
``on_rotate`` callbacks, which is where owners of open sessions end them and start new ones
under the new pseudonyms, so no session links two key days.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date

from core.privacy.keystore import KeyStore

log = logging.getLogger(__name__)

OnRotate = Callable[[date], Awaitable[None] | None]
#: Never sleep longer than this in one go (clock jumps, suspended VMs).
MAX_SLEEP_S = 300.0


async def rotate_on_schedule(store: KeyStore, on_rotate: list[OnRotate] | None = None) -> None:
    """Run until cancelled: rotate at each key-day boundary, then notify ``on_rotate``."""
    store.current_key()  # the key of today is in place before the first wait
    while True:
        day = store.key_day()
        wait = (store.next_rotation() - store._clock()).total_seconds()
        await asyncio.sleep(min(max(wait, 0.0), MAX_SLEEP_S))
        if store.key_day() == day:
            continue
        store.current_key()
        new_day = store.key_day()
        log.info("pseudonymisation key %s rotated on schedule (key day %s)", store.scope, new_day)
        for callback in on_rotate or ():
            try:
                result = callback(new_day)
                if result is not None:
                    await result
            except Exception:  # one owner's failure must not stop the timer
                log.exception("a key-rotation callback failed")
