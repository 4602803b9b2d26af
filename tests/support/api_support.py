"""Helpers for the API tests: run the app (in-process ASGI or a real uvicorn), read SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from schemas.stream_out import OccupancyUpdateV1
from tests.support.net import until


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the app in-process, with its lifespan running."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as client,
    ):
        yield client


@asynccontextmanager
async def uvicorn_server(app: FastAPI) -> AsyncIterator[str]:
    """A real uvicorn on a free 127.0.0.1 port (needed for honest streaming tests)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), "uvicorn start", within=30)
        if task.done():
            task.result()
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class SseEvent:
    event: str | None = None
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Parse a text/event-stream (per the WHATWG rules we rely on) into events."""
    current = SseEvent()
    data_lines: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            current.data = "\n".join(data_lines)
            yield current
            current, data_lines = SseEvent(), []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            current.comments.append(value)
        elif name == "data":
            data_lines.append(value)
        elif name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "retry":
            current.retry = int(value)


async def read_occupancy(
    events: AsyncIterator[SseEvent], n: int, within: float = 60.0
) -> list[SseEvent]:
    """The next ``n`` occupancy events (skipping pings and the retry preamble)."""
    got: list[SseEvent] = []

    async def collect() -> None:
        async for ev in events:
            if ev.event == "occupancy":
                got.append(ev)
                if len(got) == n:
                    return

    try:
        await asyncio.wait_for(collect(), within)
    except TimeoutError:
        raise AssertionError(f"got {len(got)} of {n} occupancy events in {within}s") from None
    return got


def update(site: str, connected: int) -> OccupancyUpdateV1:
    now = datetime.now(UTC)
    return OccupancyUpdateV1(site=site, connected=connected, as_of=now, emitted_at=now)


async def produce(bootstrap: str, topic: str, messages: list[OccupancyUpdateV1 | bytes]) -> None:
    """Send messages keyed by site (as the worker does) and wait for every ack."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for m in messages:
            if isinstance(m, bytes):
                await producer.send_and_wait(topic, m, key=b"garbage")
            else:
                await producer.send_and_wait(
                    topic, m.model_dump_json().encode(), key=m.site.encode()
                )
    finally:
        await producer.stop()
