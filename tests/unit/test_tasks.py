"""cancel_and_wait stops a task that swallows a cancellation (as aiokafka's close does)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from core.tasks import cancel_and_wait


async def _swallows_once(steps: list[str]) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # like AIOKafkaClient.close
        await asyncio.sleep(30)
    steps.append("carried on")
    await asyncio.sleep(30)
    steps.append("finished")


async def test_a_task_that_swallows_the_first_cancellation_is_stopped() -> None:
    steps: list[str] = []
    task = asyncio.create_task(_swallows_once(steps))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, recancel_s=0.05), 5)
    assert task.cancelled() and steps == ["carried on"]


async def test_one_cancellation_does_not_stop_it() -> None:
    """Proves the test above can fail: cancel + await, the usual idiom, hangs here."""
    task = asyncio.create_task(_swallows_once([]))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), 0.3)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_task_that_failed_is_waited_for_without_raising() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert isinstance(task.exception(), RuntimeError)
