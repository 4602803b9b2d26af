"""Run ``tourpulse gateway`` as its own process against the test brokers, and stop it as an
orchestrator would (SIGTERM, then kill after a minute)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from core.settings import Settings


def run_cli(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TP_MQTT_HOST": settings.mqtt_host,
        "TP_MQTT_PORT": str(settings.mqtt_port),
        "TP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "TP_TOPIC_NAMESPACE": settings.topic_namespace or "",
    }
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "gateway", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def stop_cli(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
