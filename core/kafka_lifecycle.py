"""Start and stop aiokafka clients without losing a cancellation or a connection.

Two aiokafka behaviours make a plain ``await client.start()`` / ``stop()`` unsafe in a task
that may be cancelled (an API shutting down while its live feed starts, a worker stopping):

- **start**: the bootstrap opens a connection and awaits the cluster's metadata on it with
  no ``finally``; a cancellation landing there left that socket open ("ResourceWarning:
  unclosed AIOKafkaConnection"). :func:`start_shielded` lets the start finish (up to
  ``grace_s``) so the caller's own ``stop()`` closes everything, then re-raises.
- **stop**: the client's ``close()`` awaits its metadata task inside
  ``suppress(CancelledError)``, so a cancellation of the *caller* landing there is lost and
  the caller runs on (the live feed went on to build its consumer after closing a probe,
  and the API's shutdown waited for it forever). :func:`stop_client` re-raises it.
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


class Stoppable(Protocol):
    def stop(self) -> Awaitable[None]: ...


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


async def stop_client(client: Stoppable) -> None:
    """``await client.stop()``, then raise the cancellation it may have swallowed."""
    await client.stop()
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
