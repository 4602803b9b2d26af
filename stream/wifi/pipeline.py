"""Overlap consuming and writing: fill batch N+1 while batch N is in its transaction.

``stream.take`` acks a batch as soon as the agent asks for the next one and stops filling
while the agent works on it, so consuming and writing would alternate. Instead the agent
takes batches of events with ``noack_take`` (which never acks) and hands them to a writer
task, which stores one batch at a time and acks its events only after the transaction
committed, in order: the committed Kafka offset never passes an unstored event. Memory
stays bounded: one batch filling, one queued, one being written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


class BatchPipeline:
    def __init__(
        self,
        write: Callable[[list[bytes]], Awaitable[object]],
        ack: Callable[[Any], Awaitable[object]],
    ) -> None:
        self._write = write
        self._ack = ack
        self._queue: asyncio.Queue[Sequence[Any]] = asyncio.Queue(maxsize=1)
        self._writer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BatchPipeline:
        self._writer = asyncio.create_task(self._run(), name="occupancy-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def submit(self, events: Sequence[Any]) -> None:
        """Queue a batch for writing; waits while the previous one is still queued."""
        if self._writer is None:
            raise RuntimeError("BatchPipeline used outside 'async with'")
        if self._writer.done():  # a crashed writer must stop the agent, not stall it
            self._writer.result()
        await self._queue.put(events)

    async def _run(self) -> None:
        while True:
            events = await self._queue.get()
            await self._write([e.value for e in events])
            for event in events:
                await self._ack(event)
