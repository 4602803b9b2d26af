"""RetryingSink: a failing database stalls the work (never skips it) and recovers."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, Counter

from stream.storage.reconnect import RetryingSink


@dataclass
class Sink:
    conn: psycopg.AsyncConnection[Any]


def _errors() -> Counter:
    return Counter("errors", "test", registry=CollectorRegistry())


async def test_unreachable_database_is_retried_not_skipped() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    errors = _errors()
    db = RetryingSink(f"postgresql://x:y@127.0.0.1:{port}/z", "t", Sink, errors, 0.05, 0.1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(db.run(lambda sink: asyncio.sleep(0)), 1.0)
    assert not db.ok
    assert errors._value.get() >= 3  # kept retrying


@pytest.mark.integration
async def test_failed_work_reconnects_and_succeeds(database_url: str) -> None:
    errors = _errors()
    db = RetryingSink(database_url, "t", Sink, errors, 0.01, 0.05)
    attempts: list[int] = []

    async def work(sink: Sink) -> int:
        attempts.append(sink.conn.info.backend_pid)
        if len(attempts) == 1:
            raise psycopg.OperationalError("connection lost")
        cur = await sink.conn.execute("SELECT 41 + 1")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    try:
        assert await db.run(work) == 42
    finally:
        await db.close()
    assert db.ok and errors._value.get() == 1
    assert attempts[0] != attempts[1]  # the second try ran on a fresh connection (backend)


@pytest.mark.integration
async def test_sink_connections_never_jit_compile(database_url: str) -> None:
    """A statement estimated expensive enough is JIT-compiled on a default connection; on
    a sink's it is not. The minute recompute once spent ~0.7 s compiling to count 6,500
    rows, stalling its worker (and the pipeline's latency) every few seconds."""
    costly = "EXPLAIN SELECT count(*) FROM generate_series(1, 3000) a, generate_series(1, 3000) b"
    async with await psycopg.AsyncConnection.connect(database_url) as plain:
        default_plan = [r[0] for r in await (await plain.execute(costly)).fetchall()]
    if not any(line.startswith("JIT:") for line in default_plan):
        pytest.skip("this PostgreSQL does not JIT-compile (no LLVM provider)")
    db = RetryingSink(database_url, "t", Sink, _errors())

    async def explain(sink: Sink) -> list[str]:
        return [str(r[0]) for r in await (await sink.conn.execute(costly)).fetchall()]

    try:
        assert not any(line.startswith("JIT:") for line in await db.run(explain))
    finally:
        await db.close()
