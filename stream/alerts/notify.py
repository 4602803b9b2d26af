"""Alert notifications by webhook (JSON) and e-mail (SMTP), retried in the background.

``submit`` never blocks and never raises: the rule engine hands over an alert and goes on
processing the stream. Each target gets its own delivery attempts with exponential
backoff, so a dead mail server does not delay the webhook. Queued notifications live in
memory: a notification still queued when the process dies is lost (the alert itself is
safe in PostgreSQL and is re-notified by escalation if nobody acknowledges it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import httpx
from prometheus_client import Counter, Gauge

from device_configs.alerting import EmailTarget, WebhookTarget

log = logging.getLogger(__name__)

SENT = Counter("tp_notifications_sent_total", "Notifications delivered", ["target"])
FAILED = Counter("tp_notification_attempts_failed_total", "Failed delivery attempts", ["target"])
GAVE_UP = Counter(
    "tp_notifications_given_up_total",
    "Notifications dropped after all retries or because the queue was full",
    ["target", "why"],
)
QUEUED = Gauge("tp_notifications_queued", "Notifications waiting for delivery")

Target = WebhookTarget | EmailTarget


class Notifier:
    def __init__(
        self,
        targets: Sequence[Target],
        *,
        max_attempts: int = 6,
        first_backoff_s: float = 1.0,
        queue_size: int = 10_000,
        timeout_s: float = 10.0,
    ) -> None:
        self._targets = list(targets)
        self._max_attempts = max_attempts
        self._first_backoff_s = first_backoff_s
        self._timeout_s = timeout_s
        self._queue: asyncio.Queue[tuple[Target, dict[str, Any]]] = asyncio.Queue(queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None

    async def start(self, concurrency: int = 4) -> None:
        self._http = httpx.AsyncClient(timeout=self._timeout_s)
        self._workers = [asyncio.create_task(self._work()) for _ in range(concurrency)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._http:
            await self._http.aclose()

    def submit(self, alert: dict[str, Any], reason: str) -> int:
        """Queue ``alert`` (its public JSON) for every target that wants its severity."""
        queued = 0
        for target in self._targets:
            if alert["severity"] not in target.severities:
                continue
            try:
                self._queue.put_nowait((target, {"reason": reason, "alert": alert}))
                queued += 1
            except asyncio.QueueFull:
                GAVE_UP.labels(target.name, "queue_full").inc()
                log.error("notification queue full: dropped %s for %s", reason, target.name)
        QUEUED.set(self._queue.qsize())
        return queued

    async def drain(self) -> None:
        """Wait until every queued notification was delivered or given up (for tests)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            target, body = await self._queue.get()
            try:
                await self._deliver_with_retries(target, body)
            finally:
                self._queue.task_done()
                QUEUED.set(self._queue.qsize())

    async def _deliver_with_retries(self, target: Target, body: dict[str, Any]) -> None:
        delay = self._first_backoff_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                if isinstance(target, WebhookTarget):
                    await self._post(target, body)
                else:
                    await asyncio.to_thread(_send_mail, target, body, self._timeout_s)
            except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
                FAILED.labels(target.name).inc()
                log.warning("notify %s attempt %d failed: %s", target.name, attempt, exc)
                if attempt < self._max_attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 60.0)
                continue
            SENT.labels(target.name).inc()
            return
        GAVE_UP.labels(target.name, "retries_exhausted").inc()
        log.error("notify %s: gave up after %d attempts", target.name, self._max_attempts)

    async def _post(self, target: WebhookTarget, body: dict[str, Any]) -> None:
        assert self._http is not None, "Notifier.start() not called"
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = {"content-type": "application/json"}
        secret = os.environ.get(target.secret_env) if target.secret_env else None
        if secret:
            digest = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
            headers["x-tourpulse-signature"] = f"sha256={digest}"
        response = await self._http.post(str(target.url), content=payload, headers=headers)
        response.raise_for_status()


def _send_mail(target: EmailTarget, body: dict[str, Any], timeout_s: float) -> None:
    alert = body["alert"]
    msg = EmailMessage()
    msg["From"] = target.sender
    msg["To"] = ", ".join(target.recipients)
    msg["Subject"] = (
        f"[TourPulse {alert['severity']}] {alert['type']} at {alert['site']} ({body['reason']})"
    )
    msg.set_content(
        f"Alert #{alert['id']} {alert['state']}: {alert['type']} at {alert['site']}\n"
        f"originator: {alert['originator']}\nsince: {alert['created_at']}\n"
        f"details: {json.dumps(alert['details'], ensure_ascii=False)}\n"
    )
    user = os.environ.get(target.username_env) if target.username_env else None
    password = os.environ.get(target.password_env) if target.password_env else None
    if user and password and not target.starttls:
        # Never send a password in clear text: refuse (counted as a failed delivery).
        raise smtplib.SMTPException(f"{target.name}: SMTP login configured without STARTTLS")
    with smtplib.SMTP(target.smtp_host, target.smtp_port, timeout=timeout_s) as smtp:
        if target.starttls:
            # A verifying context (certificate chain and host name): smtplib's default
            # context does not verify, so a man in the middle could read the password.
            smtp.starttls(context=ssl.create_default_context(cafile=target.tls_ca_file))
        if user and password:
            smtp.login(user, password)
        smtp.send_message(msg)
