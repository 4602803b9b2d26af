"""Run ``tourpulse gateway`` as its own process against the test brokers, wait until it is
healthy, and stop it as an orchestrator would (SIGTERM, then kill after a minute)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from core.settings import Settings
from tests.support.edge_wifi_support import spawn_cli


def site_gateway_args(namespace: str, metrics_port: int) -> list[str]:
    """A gateway confined to the test's site (its namespace), so other tests' traffic on
    the shared broker never reaches it, serving health and metrics on ``metrics_port``."""
    return [
        "--client-id",
        f"gw-{namespace}",
        "--share-group",
        namespace,
        "--site",
        namespace,
        "--metrics-port",
        str(metrics_port),
        "--session-expiry",
        "60",
    ]


def run_cli(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TP_MQTT_HOST": settings.mqtt_host,
        "TP_MQTT_PORT": str(settings.mqtt_port),
        "TP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TP_TOPIC_NAMESPACE": settings.topic_namespace or "",
    }
    return spawn_cli(["gateway", *args], env, log_path)


async def stop_cli(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def wait_healthy(
    proc: subprocess.Popen[bytes], metrics_port: int, log_path: Path, timeout_s: float = 90.0
) -> None:
    """Until the gateway's ``/healthz`` answers 200; fails with its log if it exits first."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}", timeout=5) as http:
        while True:
            if proc.poll() is not None:
                raise AssertionError(await asyncio.to_thread(log_path.read_text))
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gateway never became healthy"
            await asyncio.sleep(0.2)
