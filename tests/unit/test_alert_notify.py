"""Notifications reach a real local webhook server and a real SMTP server, with retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from email import message_from_bytes
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller

from device_configs.alerting import EmailTarget, WebhookTarget
from stream.alerts.notify import Notifier
from tests.support.net import free_port

ALERT: dict[str, Any] = {
    "id": 7,
    "incident_id": 3,
    "originator": "ben-thanh-market",
    "site": "ben-thanh-market",
    "type": "occupancy.high",
    "severity": "MAJOR",
    "state": "ACTIVE_UNACK",
    "created_at": "2026-11-26T10:00:00+00:00",
    "details": {"occupancy": 2950, "capacity": 3000},
}


class FlakyHook:
    """ASGI webhook receiver that answers 503 to the first ``failures`` posts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.attempts += 1
        status = 503 if self.attempts <= self.failures else 200
        if status == 200:
            self.bodies.append(json.loads(body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def hook() -> AsyncIterator[tuple[FlakyHook, str]]:
    app = FlakyHook(failures=2)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn exposes only a flag)
        await asyncio.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}/hook"
    server.should_exit = True
    await task


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


async def test_webhook_is_retried_until_delivered(hook: tuple[FlakyHook, str]) -> None:
    app, url = hook
    notifier = Notifier([WebhookTarget(kind="webhook", name="ioc", url=url)], first_backoff_s=0.05)
    await notifier.start()
    try:
        assert notifier.submit(ALERT, "raised") == 1
        await asyncio.wait_for(notifier.drain(), 30)
    finally:
        await notifier.stop()
    assert app.attempts == 3
    assert app.bodies == [{"reason": "raised", "alert": ALERT}]


async def test_email_goes_to_a_real_smtp_server_and_severity_filter_applies() -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    target = EmailTarget(
        kind="email",
        name="duty",
        smtp_port=port,
        sender="tp@example.vn",
        recipients=["duty@example.vn"],
        severities=["MAJOR", "CRITICAL"],
    )
    notifier = Notifier([target], first_backoff_s=0.05)
    await notifier.start()
    try:
        assert notifier.submit({**ALERT, "severity": "WARNING"}, "raised") == 0
        assert notifier.submit(ALERT, "escalated") == 1
        await asyncio.wait_for(notifier.drain(), 30)
    finally:
        await notifier.stop()
        controller.stop()
    (raw,) = inbox.messages
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "[TourPulse MAJOR] occupancy.high at ben-thanh-market (escalated)"
    assert "2950" in mail.get_payload()


async def test_unreachable_target_gives_up_without_blocking_submit() -> None:
    dead = WebhookTarget(kind="webhook", name="dead", url=f"http://127.0.0.1:{free_port()}/")
    notifier = Notifier([dead], max_attempts=2, first_backoff_s=0.01)
    await notifier.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(100):
            notifier.submit(ALERT, "raised")
        assert loop.time() - started < 0.5  # submit never waits for delivery
        await asyncio.wait_for(notifier.drain(), 30)
    finally:
        await notifier.stop()
