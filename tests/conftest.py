"""Shared fixtures: the real local stack, a unique namespace and a fresh database per test.

Contract relied on by every test module (keep these names stable):

- ``stack`` (session): endpoints of Mosquitto, Kafka and PostgreSQL on 127.0.0.1
  (``.mqtt_host``, ``.mqtt_port``, ``.kafka_bootstrap``, ``.database_url``).
- ``namespace``: "t" + 8 hex chars, for Kafka topic prefixes, consumer groups, MQTT sites.
- ``database_url``: a fresh database with the migrations applied, dropped afterwards.
- ``settings``: :class:`infra.settings.Settings` pointing at all of the above.
- ``kafka_admin``: ``await kafka_admin.create_topics(names, partitions=4)`` and
  ``await kafka_admin.consume_all(topic, n, timeout=60)`` bound to the stack's broker.
- ``mqtt_publish``: ``await mqtt_publish(topic, payloads, qos=1)`` waiting for PUBACKs.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kafka_helpers
import mqtt_helpers
import psycopg
import pytest
from psycopg import sql

from infra.settings import Settings
from infra.stack import manager
from infra.stack.manager import Endpoints
from infra.stack.state import StackConfig

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "stream" / "storage" / "migrations"


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    """The real services, via the same code as ``tourpulse stack up``.

    Running services (a developer's ``stack up``, CI's or shared ones) are reused; what
    this session had to start is stopped again at the end so nothing outlives pytest.
    """
    cfg = StackConfig.from_settings(Settings())
    try:
        result = manager.up(cfg, say=lambda line: print(f"[stack] {line}", flush=True))
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"could not bring the stack up: {exc}")
    yield result.endpoints
    if result.started:
        manager.down(
            cfg, say=lambda line: print(f"[stack] {line}", flush=True), only=set(result.started)
        )


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:8]


def _apply_migrations(url: str) -> None:
    """Use the project's migration runner once it exists, else run the SQL files in order."""
    if importlib.util.find_spec("stream.storage.migrate") is not None:
        from stream.storage import migrate

        migrate.apply(url)
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            conn.execute(path.read_text())  # type: ignore[call-overload]


@pytest.fixture
def database_url(stack: Endpoints, namespace: str) -> Iterator[str]:
    dbname = f"tp_{namespace}"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    url = _with_dbname(stack.database_url, dbname)
    try:
        _apply_migrations(url)
        yield url
    finally:
        with psycopg.connect(stack.database_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


def _with_dbname(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (keeps user, password, query)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture
def settings(stack: Endpoints, namespace: str, database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        mqtt_host=stack.mqtt_host,
        mqtt_port=stack.mqtt_port,
        kafka_bootstrap=stack.kafka_bootstrap,
        topic_namespace=namespace,
        DATABASE_URL=database_url,  # the field's alias: Settings.database_url_env
        data_dir=tmp_path / ".tourpulse",
    )


class KafkaAdmin:
    """Test helpers bound to the stack's Kafka bootstrap address."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    async def create_topics(self, names: Sequence[str], partitions: int = 4) -> None:
        await kafka_helpers.create_topics(self.bootstrap, names, partitions=partitions)

    async def consume_all(
        self,
        topic: str,
        n: int,
        timeout: float = 60.0,  # noqa: ASYNC109 (deadline)
    ) -> list[Any]:
        return await kafka_helpers.consume_all(self.bootstrap, topic, n, timeout=timeout)


@pytest.fixture
def kafka_admin(stack: Endpoints) -> KafkaAdmin:
    return KafkaAdmin(stack.kafka_bootstrap)


@pytest.fixture
def mqtt_publish(stack: Endpoints) -> Any:
    async def publish(topic: str, payloads: Sequence[bytes | str], qos: int = 1) -> None:
        await mqtt_helpers.apublish_payloads(
            stack.mqtt_host, stack.mqtt_port, topic, payloads, qos=qos
        )

    return publish
