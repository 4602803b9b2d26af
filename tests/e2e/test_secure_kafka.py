"""A real SASL_SSL (SCRAM-SHA-512) Kafka with the StandardAuthorizer and the generated ACLs:
unauthenticated and wrong-password clients are refused, and each service principal can do
what it needs and nothing else, through the one :class:`KafkaClientSettings` model for both
confluent-kafka and aiokafka. The broker is started once for the module (~20-30 s).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError as AioKafkaError
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from api.ioc.users import Role, UserStore
from core.kafka_client import KafkaClientSettings
from core.settings import Settings
from infra.kafka_acl import apply_grants, service_grants
from infra.stack.certs import make_server_cert
from infra.stack.kafka import fetch_jars
from infra.stack.procs import stop_process
from infra.stack.secure_kafka import ADMIN, start_secure_kafka
from schemas.device import AvailabilityData, AvailabilityV1
from schemas.portal import ImpressionData, PortalImpressionV1
from schemas.topics import KafkaTopic
from tests.support.api_support import SseEvent, read_occupancy, sse_events, uvicorn_server
from tests.support.edge_wifi_support import (
    AGENT,
    SITE,
    healthy,
)
from tests.support.edge_wifi_support import stop_process as stop_cli
from tests.support.gateway_samples import session_start
from tests.support.net import until, wait_until
from tests.support.secure_rig import SecureMqtt, kafka_env, publish_as_device
from tests.support.worker_support import query, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NS = "sec"
USERS = ("tp-gateway", "tp-worker", "tp-api")
PASSWORD = "correct horse battery staple"


def _free_pair(lo: int = 36000, hi: int = 36998) -> int:
    """A port whose successor is free too (broker + controller), in this suite's range."""
    for port in range(lo, hi, 2):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair in 36000-36999")


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KafkaClientSettings]]:
    java = shutil.which("java")
    if java is None:
        pytest.fail("java is not installed (make deps)")
    libs = fetch_jars(REPO / ".tourpulse" / "kafka" / "libs", print)  # no-op after kafka-jars
    root = tmp_path_factory.mktemp("secure-kafka")
    certs = make_server_cert(root / "tls")
    passwords = {u: secrets.token_urlsafe(16) for u in (ADMIN, *USERS)}
    broker = start_secure_kafka(java, libs, root / "kafka", certs, passwords, port=_free_pair())

    def as_user(user: str, password: str | None = None) -> KafkaClientSettings:
        return KafkaClientSettings.model_validate(
            {
                "bootstrap": broker.bootstrap,
                "security_protocol": "SASL_SSL",
                "username": user,
                "password": password or passwords[user],
                "tls_ca": certs.ca,
            }
        )

    try:
        admin = AdminClient(as_user(ADMIN).librdkafka())
        deadline = time.monotonic() + 90
        while True:
            try:
                admin.list_topics(timeout=3)
                break
            except KafkaException:
                if time.monotonic() > deadline or not broker.proc.alive():
                    log = (root / "kafka" / "logs" / "kafka.out").read_text()[-3000:]
                    pytest.fail(f"secure Kafka did not start:\n{log}")
                time.sleep(0.5)
        apply_grants(admin, service_grants(NS))
        from confluent_kafka.admin import NewTopic

        wanted = [f"{NS}.{t}" for t in KafkaTopic]
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in wanted]).values():
            future.result(30)
        clients = {u: as_user(u) for u in (ADMIN, *USERS)}
        clients["wrong-password"] = as_user("tp-api", "not-the-password")
        clients["plaintext"] = KafkaClientSettings(bootstrap=broker.bootstrap)
        yield clients
    finally:
        stop_process(broker.proc)


def _produce(settings: KafkaClientSettings, topic: str) -> str | None:
    """None when the broker acknowledged the record, else the error name."""
    errors: list[str | None] = []
    producer = Producer(
        settings.librdkafka_producer(**{"message.timeout.ms": 8000, "log_level": 0})
    )
    producer.produce(
        topic, b"{}", on_delivery=lambda err, _m: errors.append(err.name() if err else None)
    )
    producer.flush(10)
    return errors[0] if errors else "no delivery report"


def test_unauthenticated_and_wrong_password_clients_are_refused(kafka) -> None:
    for who in ("plaintext", "wrong-password"):
        admin = AdminClient(kafka[who].librdkafka(log_level=0))
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)


async def test_wrong_password_is_refused_for_aiokafka_too(kafka) -> None:
    producer = AIOKafkaProducer(**kafka["wrong-password"].aiokafka(request_timeout_ms=5000))
    with pytest.raises(AioKafkaError):
        try:
            await producer.start()
        finally:
            await producer.stop()


def test_each_principal_writes_exactly_where_it_may(kafka) -> None:
    session, live = f"{NS}.{KafkaTopic.WIFI_SESSION}", f"{NS}.{KafkaTopic.OCCUPANCY_LIVE}"
    changes, dlq = f"{NS}.{KafkaTopic.ALERT_CHANGES}", f"{NS}.{KafkaTopic.DEAD_LETTER}"
    denied = "TOPIC_AUTHORIZATION_FAILED"
    got = {
        ("tp-gateway", session): _produce(kafka["tp-gateway"], session),
        ("tp-gateway", dlq): _produce(kafka["tp-gateway"], dlq),
        ("tp-gateway", live): _produce(kafka["tp-gateway"], live),
        ("tp-gateway", changes): _produce(kafka["tp-gateway"], changes),
        ("tp-api", changes): _produce(kafka["tp-api"], changes),
        ("tp-api", session): _produce(kafka["tp-api"], session),
        ("tp-api", live): _produce(kafka["tp-api"], live),
        ("tp-worker", live): _produce(kafka["tp-worker"], live),
        ("tp-worker", "other.tp.occupancy.live.v1"): _produce(
            kafka["tp-worker"], "other.tp.occupancy.live.v1"
        ),
    }
    assert got == {
        ("tp-gateway", session): None,
        ("tp-gateway", dlq): None,
        ("tp-gateway", live): denied,
        ("tp-gateway", changes): denied,
        ("tp-api", changes): None,
        ("tp-api", session): denied,
        ("tp-api", live): denied,
        ("tp-worker", live): None,
        ("tp-worker", "other.tp.occupancy.live.v1"): denied,  # outside its namespace
    }


async def _can_read(settings: KafkaClientSettings, topic: str, group: str | None) -> bool:
    """True when the records already in ``topic`` reach this principal (and it may commit)."""
    consumer = AIOKafkaConsumer(
        **settings.aiokafka(group_id=group, request_timeout_ms=8000, auto_offset_reset="earliest")
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = await consumer.getmany(tp, timeout_ms=4000)  # unauthorised: logged, no records
        if group is not None:
            await consumer.commit()  # the group's READ right is checked here
        return bool(got.get(tp))
    except AioKafkaError:
        return False
    finally:
        await consumer.stop()


async def test_each_principal_reads_exactly_what_it_may(kafka) -> None:
    session, live = f"{NS}.{KafkaTopic.WIFI_SESSION}", f"{NS}.{KafkaTopic.OCCUPANCY_LIVE}"
    assert _produce(kafka[ADMIN], session) is None and _produce(kafka[ADMIN], live) is None
    assert await _can_read(kafka["tp-worker"], session, f"{NS}.tourpulse-occupancy")
    assert not await _can_read(kafka["tp-worker"], session, "other-group")  # outside prefix
    assert await _can_read(kafka["tp-api"], live, None)
    assert not await _can_read(kafka["tp-api"], session, None)
    assert not await _can_read(kafka["tp-gateway"], session, None)


@pytest.mark.slow
async def test_end_to_end_over_tls_and_sasl_reaches_postgres_and_the_live_feed(
    kafka, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """device -(MQTT TLS, own user)-> gateway -(SASL_SSL)-> worker -(SASL_SSL)-> PostgreSQL,
    and the worker's occupancy update -(SASL_SSL, tp-api)-> the API's live SSE feed. Every
    hop is authenticated with its service's own identity; the brokers accept nothing else."""
    rig = SecureMqtt.start(tmp_path, kafka, database_url, NS)
    gw_port = _free_pair(36500)
    gateway = rig.spawn(["gateway", "--metrics-port", str(gw_port), "--client-id", "gw-sec"],
                        kafka["tp-gateway"], tmp_path / "gateway.log", "tp-gateway")  # fmt: skip
    app = create_app(rig.api_settings(kafka["tp-api"], monkeypatch))
    for key, value in {**rig.env, **kafka_env(kafka["tp-worker"])}.items():
        monkeypatch.setenv(key, value)
    worker = start_worker(Settings(), tmp_path / "worker.log")
    event = session_start(SITE, 1, device=AGENT)
    sql = f"SELECT session_id FROM wifi_sessions WHERE site = '{SITE}'"
    try:
        await asyncio.to_thread(wait_until, lambda: healthy(gw_port), 90, "gateway healthy")
        async with (
            uvicorn_server(app) as base,
            httpx.AsyncClient(base_url=base, timeout=60) as http,
        ):
            await until(lambda: app.state.live.hub.ready, "API live feed connected over SASL_SSL")
            portal = app.state.portal.publisher  # in the API process, as tp-portal over TLS
            await until(portal.connected.is_set, "portal publisher accepted by the broker")
            funnel = _impression(app.state.portal.portal.device_id)
            portal.publish(funnel)  # -> gateway (tp-gateway) -> Kafka
            async with http.stream("GET", "/api/v1/live") as feed:
                assert feed.status_code == 200
                events = sse_events(feed)
                await asyncio.to_thread(
                    publish_as_device, rig.device(), rig.passwords[AGENT], event
                )
                await wait_for(lambda: bool(query(database_url, sql)), 120, "session row",
                               worker, tmp_path / "worker.log")  # fmt: skip
                assert query(database_url, sql) == [(event.data.session_id,)]
                assert await _occupancy_of(events, SITE) >= 1
            funnel_topic = f"{NS}.{KafkaTopic.PORTAL_FUNNEL}"
            assert await _ids_in(kafka[ADMIN], funnel_topic) == [str(funnel.id)]
    finally:
        stop_cli(gateway)
        stop_worker(worker)
        rig.broker.stop()


@pytest.mark.slow
async def test_alert_engine_and_operator_actions_over_sasl(
    kafka, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """device offline -(MQTT TLS)-> gateway -(SASL_SSL)-> alert engine (stream runtime as
    tp-worker) -(SASL_SSL)-> the IOC live feed (tp-api); an operator's ack is produced by the
    API (aiokafka, idempotent, tp-api) and comes back on the same feed."""
    rig = SecureMqtt.start(tmp_path, kafka, database_url, NS)
    gw_port, alerts_port = _free_pair(36500), _free_pair(36600)
    gateway = rig.spawn(["gateway", "--metrics-port", str(gw_port), "--client-id", "gw-alert"],
                        kafka["tp-gateway"], tmp_path / "gateway.log", "tp-gateway")  # fmt: skip
    alerts = rig.spawn(["alerts", "--metrics-port", str(alerts_port), "--group-session-timeout",
                        "6", "--heartbeat-interval", "1"], kafka["tp-worker"],
                       tmp_path / "alerts.log")  # fmt: skip
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        await UserStore(pool).create("olga", PASSWORD, Role.OPERATOR)
    app = create_app(rig.api_settings(kafka["tp-api"], monkeypatch))
    try:
        for port in (gw_port, alerts_port):
            await asyncio.to_thread(wait_until, lambda p=port: healthy(p), 90, f"{port} healthy")
        async with (
            uvicorn_server(app) as base,
            httpx.AsyncClient(base_url=base, timeout=60) as http,
        ):
            login = {"username": "olga", "password": PASSWORD}
            token = await http.post("/api/v1/auth/token", data=login)
            operator = {"Authorization": f"Bearer {token.json()['access_token']}"}
            await until(lambda: app.state.ioc.feed.hub.ready, "IOC feed connected over SASL_SSL")
            async with http.stream("GET", "/api/v1/ioc/live", headers=operator) as feed:
                assert feed.status_code == 200
                events = sse_events(feed)
                raised = await _alert_until(events, "ACTIVE_UNACK", rig)
                assert raised["type"] == "device.offline" and raised["originator"] == AGENT
                acked = await http.post(f"/api/v1/alerts/{raised['id']}/ack", headers=operator)
                assert acked.status_code == 200 and acked.json()["published"] is True
                back = await _alert_until(events, "ACTIVE_ACK", None)
                assert back["id"] == raised["id"]
    finally:
        stop_cli(gateway)
        stop_cli(alerts)
        rig.broker.stop()


async def _alert_until(
    events: AsyncIterator[SseEvent], state: str, rig: SecureMqtt | None
) -> dict[str, Any]:
    """The next alert change in ``state``; with ``rig``, the device keeps reporting itself
    offline meanwhile (the engine's new consumer group starts at the latest offsets)."""

    async def read() -> dict[str, Any]:
        async for ev in events:
            if ev.event == "alert":
                alert: dict[str, Any] = json.loads(ev.data)["alert"]
                if alert["state"] == state:
                    return alert
        raise AssertionError("the live feed ended")

    reader = asyncio.create_task(read())
    try:
        while not reader.done():
            if rig is not None:
                offline = AvailabilityV1(
                    site=SITE,
                    device=AGENT,
                    source="edge",
                    event_time=datetime.now(UTC),
                    data=AvailabilityData(state="offline", reason="test"),
                )
                await asyncio.to_thread(
                    publish_as_device, rig.device(), rig.passwords[AGENT], offline
                )
            await asyncio.wait({reader}, timeout=2.0)
        return reader.result()
    finally:
        reader.cancel()


def _impression(device: str) -> PortalImpressionV1:
    data = ImpressionData(
        client_id="ab" * 16, portal_session="cd" * 16, controller="meraki", language="vi"
    )
    return PortalImpressionV1(
        site=SITE, device=device, source="portal", event_time=datetime.now(UTC), data=data
    )


async def _ids_in(settings: KafkaClientSettings, topic: str) -> list[str]:
    """Event ids of every record in partition 0 of ``topic`` (read as ``settings``)."""
    consumer = AIOKafkaConsumer(**settings.aiokafka(group_id=None, request_timeout_ms=8000))
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = await consumer.getmany(tp, timeout_ms=5000)
        return [json.loads(r.value)["id"] for r in got.get(tp, [])]
    finally:
        await consumer.stop()


async def _occupancy_of(events: AsyncIterator[SseEvent], site: str) -> int:
    """The first live occupancy the API streams for ``site`` with someone connected."""
    for _ in range(20):
        (got,) = await read_occupancy(events, 1, within=90)
        data = json.loads(got.data)
        if data["site"] == site and data["connected"] >= 1:
            return int(data["connected"])
    raise AssertionError(f"no live occupancy for {site}")
