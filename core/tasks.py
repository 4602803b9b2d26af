"""Stop a task for sure, even when a library inside it swallows the cancellation.

Why: aiokafka's client ``close()`` cancels its metadata task and awaits it inside
``suppress(CancelledError)``, so a cancellation of *our* task that lands on that await is
lost: the task runs on. The live feed closes a short-lived probe client before it builds
its consumer; an API stopped at that moment (CI, a quick app lifespan) saw its feed go on
to subscribe and consume, and its shutdown, awaiting the feed's task, waited forever.
:func:`cancel_and_wait` cancels again until the task is done.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: How long one cancellation is given before the next: a task that honours it is done
#: long before; one whose cancellation was swallowed gets another at its next await.
RECANCEL_S = 0.5


async def cancel_and_wait(task: asyncio.Task[Any], recancel_s: float = RECANCEL_S) -> None:
    """Cancel ``task`` and return once it is done, re-cancelling it if it carries on.

    The task's own exception, if it ended with one, is retrieved and not raised: the
    caller is stopping it and has nothing better to do with it.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=recancel_s)
    if not task.cancelled():
        task.exception()
