"""A sink on one PostgreSQL connection that is reopened after any failure.

Stream workers must never acknowledge events that were not stored, so a failing batch
transaction is retried (doubling backoff, capped) until it succeeds: a broken database
stalls the worker, visibly in ``ok`` (its /healthz) and an error counter, instead of
losing data. One transaction at a time runs on the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from prometheus_client import Counter

log = logging.getLogger(__name__)

T = TypeVar("T")


class HasConnection(Protocol):
    conn: psycopg.AsyncConnection[Any]


S = TypeVar("S", bound=HasConnection)


class RetryingSink(Generic[S]):
    def __init__(
        self,
        database_url: str,
        application_name: str,
        make_sink: Callable[[psycopg.AsyncConnection[Any]], S],
        errors: Counter,
        first_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._url = database_url
        self._app = application_name
        self._make_sink = make_sink
        self._errors = errors
        self._first, self._max = first_backoff_s, max_backoff_s
        self._lock = asyncio.Lock()
        self.current: S | None = None
        self.ok = True

    async def run(self, work: Callable[[S], Awaitable[T]]) -> T:
        """Run ``work`` on the sink, reconnecting and retrying until it succeeds."""
        delay = self._first
        async with self._lock:
            while True:
                try:
                    result = await work(await self._connect())
                    self.ok = True
                    return result
                except Exception as exc:  # any failure: retry, never ack unstored events
                    self.ok = False
                    self._errors.inc()
                    log.warning(
                        "%s: transaction failed (%s), retrying in %.1fs", self._app, exc, delay
                    )
                    await self.close()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max)

    async def close(self) -> None:
        if self.current is not None:
            try:
                await self.current.conn.close()
            finally:
                self.current = None

    async def _connect(self) -> S:
        if self.current is None or self.current.conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self._url,
                autocommit=True,  # transaction() blocks really commit, stray reads too
                # No JIT: a sink's statements touch thousands of rows, every few seconds,
                # and their estimates (CTEs over a queue that ANALYZE often sees empty) can
                # pass jit_optimize_above_cost. In the pipeline benchmark the minute
                # recompute then spent ~0.7 s compiling (113 functions, inlined and
                # optimised) to process 6,500 rows, stalling its worker for as long.
                options="-c timezone=UTC -c jit=off",
                application_name=self._app,
            )
            self.current = self._make_sink(conn)
        return self.current
