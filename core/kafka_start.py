"""Start an aiokafka client so that cancelling the caller cannot leak its connection.

Why: aiokafka's bootstrap opens a connection and awaits the cluster's metadata on it with
no ``finally``; a cancellation landing there (an API stopped while its live feed was still
starting: metadata of every topic takes 100 ms and more on a busy cluster) left that socket
open, reported later as "ResourceWarning: unclosed AIOKafkaConnection". Here the start runs
shielded: a caller cancelled meanwhile lets it finish (up to ``grace_s``), so the caller's
own ``stop()`` closes everything, and only then is cancelled itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Protocol

#: Longest a cancelled caller waits for a start in flight (a refused connection fails fast;
#: an unanswered one is bounded by the client's own request timeout).
START_GRACE_S = 10.0


class Startable(Protocol):
    def start(self) -> Awaitable[None]: ...


async def start_shielded(client: Startable, grace_s: float = START_GRACE_S) -> None:
    """``await client.start()``, but a cancellation waits for the start to finish first."""
    starting = asyncio.ensure_future(client.start())
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        if not starting.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(starting, grace_s)
        raise
