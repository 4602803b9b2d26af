"""The one free-port and poll-until helpers of the test suite.

Tests wait for what a user would see (a row stored, a message delivered) by polling, never
by sleeping a guessed time; every wait names what it waited for, so a timeout says which
step never happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from core.ports import free_port
from infra.stack.procs import port_open

__all__ = ["free_port", "port_open", "until", "wait_until"]


async def until(
    condition: Callable[[], object],
    what: str,
    within: float = 60.0,
    *,
    interval: float = 0.05,
    abort: Callable[[], str | None] | None = None,
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition()`` until true, else fail saying what never happened.

    ``abort`` returns a reason to stop early (a process that died); ``detail`` adds context
    (a log tail) to either failure."""
    deadline = time.monotonic() + within
    while not condition():
        reason = abort() if abort is not None else None
        if reason is None and time.monotonic() > deadline:
            reason = f"timed out after {within}s waiting for {what}"
        if reason is not None:
            raise AssertionError(f"{reason}:\n{detail()}" if detail is not None else reason)
        await asyncio.sleep(interval)


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> None:
    """:func:`until` for synchronous tests (blocks the thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
