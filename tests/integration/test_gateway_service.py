"""The ingest gateway as a service against the real Mosquitto and Kafka on 127.0.0.1: its
health endpoint and metrics, and the ``tourpulse gateway`` CLI's lifecycle (forwarding,
progress lines, SIGTERM, a Kafka it cannot reach). What it does with messages is
test_gateway's.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from schemas.codec import decode_event, encode_event
from schemas.topics import KafkaTopic
from stream.gateway.config import GatewayConfig
from stream.gateway.gateway import Gateway
from tests.support.gateway_cli import run_cli, site_gateway_args, stop_cli, wait_healthy
from tests.support.gateway_samples import session_start, topic_for
from tests.support.net import free_port

pytestmark = pytest.mark.integration


async def test_health_endpoint_and_unreachable_mqtt(settings: Settings, namespace: str) -> None:
    dead_port = settings.model_copy(update={"mqtt_port": 1})
    gw = Gateway(dead_port, GatewayConfig(client_id=f"gw-{namespace}-lost", metrics_port=0))
    await asyncio.to_thread(gw.start)
    try:
        assert gw._http is not None
        async with httpx.AsyncClient(base_url=gw._http.url, timeout=10) as http:
            resp = await http.get("/healthz")
            assert resp.status_code == 503
            assert resp.json()["details"]["mqtt"] == "disconnected"
            assert resp.json()["details"]["kafka"] == "ok"
            metrics = (await http.get("/metrics")).text
            assert "tp_gateway_mqtt_connected 0.0" in metrics
    finally:
        await asyncio.to_thread(gw.stop, 2)


async def test_cli_forwards_serves_health_and_stops_cleanly_on_sigterm(
    settings: Settings,
    namespace: str,
    kafka_admin: Any,
    mqtt_publish: Any,
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / "gateway.log"
    proc = run_cli(settings, log_path, *site_gateway_args(namespace, port), "--stats-every", "1")
    try:
        await wait_healthy(proc, port, log_path)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            event = session_start(namespace, 42)
            await mqtt_publish(topic_for(event), [encode_event(event)])
            records = await kafka_admin.consume_all(
                settings.kafka_topic(KafkaTopic.WIFI_SESSION), 1
            )
            assert decode_event(records[0].value).id == event.id
            deadline = time.monotonic() + 30
            while "tp_gateway_forwarded_total 1.0" not in (await http.get("/metrics")).text:
                assert time.monotonic() < deadline, "forwarded counter never reached 1"
                await asyncio.sleep(0.2)
    finally:
        code = await stop_cli(proc)
    output = log_path.read_text()
    assert code == 0, output
    assert "SIGTERM received" in output
    assert "forwarded 1" in output  # the periodic progress line
    assert "Traceback" not in output


async def test_cli_with_kafka_unreachable_retries_with_a_clear_message(
    settings: Settings,
    namespace: str,
    tmp_path: Path,
) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    log_path = tmp_path / "gateway.log"
    proc = run_cli(
        nowhere,
        log_path,
        "--client-id",
        f"gw-{namespace}-nok",
        "--metrics-port",
        "0",
        "--site",
        namespace,
    )
    try:
        deadline = time.monotonic() + 60
        while "retrying" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.2)
    finally:
        code = await stop_cli(proc)
    output = log_path.read_text()
    assert code == 0, output
    assert "not ready" in output
    assert "Traceback" not in output
