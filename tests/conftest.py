"""Shared fixtures: the real local stack, a unique namespace and a fresh database per test.

Contract relied on by every test module (keep these names stable):

- ``stack`` (session): endpoints of Mosquitto, Kafka and PostgreSQL on 127.0.0.1
  (``.mqtt_host``, ``.mqtt_port``, ``.kafka_bootstrap``, ``.database_url``).
- ``namespace``: "t" + 8 hex chars, for Kafka topic prefixes, consumer groups, MQTT sites.
- ``database_url``: a fresh database with the migrations applied, dropped afterwards.
- ``settings``: :class:`core.settings.Settings` pointing at all of the above.
- ``kafka_admin``: ``await kafka_admin.create_topics(names, partitions=4)``,
  ``await kafka_admin.consume_all(topic, n, timeout=60)`` and
  ``await kafka_admin.consume_until(topic, enough, wanted, timeout=60)`` bound to the
  stack's broker.
- ``mqtt_publish``: ``await mqtt_publish(topic, payloads, qos=1)`` waiting for PUBACKs.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from core.settings import Settings
from infra.stack import manager
from infra.stack.manager import Endpoints
from infra.stack.state import StackConfig
from stream.storage import migrate
from tests.support import kafka_helpers, mqtt_helpers


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config) -> Iterator[Endpoints]:
    """The real services, via the same code as ``tourpulse stack up``.

    Running services (a developer's ``stack up``, CI's or shared ones) are reused; what
    this session had to start is stopped again at the end so nothing outlives pytest.
    Progress goes straight to the terminal: starting Kafka takes a while.
    """
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"\n[stack] {line}", end="", flush=True)

    cfg = StackConfig.from_settings(Settings())
    try:
        result = manager.up(cfg, say=say)
    except (RuntimeError, OSError) as exc:
        pytest.fail(f"could not bring the stack up: {exc}")
    yield result.endpoints
    if result.started and not _is_xdist_worker(pytestconfig):
        manager.down(cfg, say=say, only=set(result.started))


#: What the xdist controller started (see pytest_configure), to stop at the very end.
_STACK_STARTED = pytest.StashKey[tuple[StackConfig, frozenset[str]]]()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """Under ``pytest -n N`` the controller owns the stack: it starts it before any worker
    and stops what it started after the last one. A worker that stopped it at its own end
    would pull Kafka from under the workers still running (they only reuse it)."""
    if _is_xdist_worker(config) or not getattr(config.option, "numprocesses", None):
        return
    cfg = StackConfig.from_settings(Settings())
    try:
        result = manager.up(cfg, say=_say_stack)
    except (RuntimeError, OSError) as exc:
        raise pytest.UsageError(f"could not bring the stack up: {exc}") from exc
    config.stash[_STACK_STARTED] = (cfg, result.started)


def pytest_unconfigure(config: pytest.Config) -> None:
    cfg, started = config.stash.get(_STACK_STARTED, (None, frozenset()))
    if cfg is not None and started:
        manager.down(cfg, say=_say_stack, only=set(started))


def _say_stack(line: str) -> None:
    print(f"[stack] {line}", flush=True)


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:8]


def _with_dbname(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (keeps user, password, query)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _timescale_ready(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return migrate.timescale_ready(conn)


@pytest.fixture(scope="session")
def storage_backends(stack: Endpoints) -> tuple[str, ...]:
    """The backends this server offers: TimescaleDB (when preloaded) and plain PostgreSQL.

    Without TimescaleDB (a machine without ../shared/vendor) the suite runs on plain
    PostgreSQL only and says so once.
    """
    if _timescale_ready(stack.database_url):
        return ("timescaledb", "plain")
    warnings.warn(
        "TimescaleDB is not preloaded here: storage tests run on plain PostgreSQL", stacklevel=2
    )
    return ("plain",)


@pytest.fixture(scope="session")
def _migrated_templates(
    stack: Endpoints, storage_backends: tuple[str, ...]
) -> Iterator[dict[str, str]]:
    """One database migrated per backend per session; each test's database is a copy.

    Copying a template (~0.1 s) is several times cheaper than migrating afresh, and every
    test still gets exactly what ``stream.storage.migrate.apply`` produces. TimescaleDB's
    job scheduler would hold a connection to a template with the extension (and make the
    copy fail), so templates refuse connections once migrated.
    """
    names: dict[str, str] = {}
    try:
        for backend in storage_backends:
            name = f"tp_template_{backend[:5]}_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(stack.database_url, autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            names[backend] = name
            migrate.apply(_with_dbname(stack.database_url, name), backend=backend)
            if backend == "timescaledb":
                _pause_data_policies(_with_dbname(stack.database_url, name))
            _close_template(stack.database_url, name)
        yield names
    finally:
        for name in names.values():
            _drop_database(stack.database_url, name)


def _pause_data_policies(url: str) -> None:
    """Tests write data stamped in 2025: a retention or compression job starting on its own
    in the middle of a test would drop or compress it. Tests that check a policy run its
    job explicitly (``CALL run_job``); the continuous aggregate's refresh stays scheduled."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
            " WHERE proc_name IN ('policy_retention', 'policy_compression')"
        )


def _close_template(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


@pytest.fixture
def db_backend(request: pytest.FixtureRequest, storage_backends: tuple[str, ...]) -> str:
    """``timescaledb`` or ``plain``: parametrised for modules with ``BOTH_BACKENDS = True``,
    else the server's default (TimescaleDB where it is preloaded)."""
    return str(getattr(request, "param", storage_backends[0]))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every database test of a ``BOTH_BACKENDS`` module on each storage backend."""
    if getattr(metafunc.module, "BOTH_BACKENDS", False) and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("db_backend", ["timescaledb", "plain"], indirect=True)


@pytest.fixture
def database_url(
    stack: Endpoints,
    namespace: str,
    db_backend: str,
    storage_backends: tuple[str, ...],
    _migrated_templates: dict[str, str],
) -> Iterator[str]:
    if db_backend not in storage_backends:
        pytest.skip(f"{db_backend} is not available on this server")
    dbname = f"tp_{namespace}"
    with psycopg.connect(stack.database_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(dbname), sql.Identifier(_migrated_templates[db_backend])
            )
        )
    try:
        yield _with_dbname(stack.database_url, dbname)
    finally:
        _drop_database(stack.database_url, dbname)


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

    async def consume_until(
        self,
        topic: str,
        enough: Callable[[list[Any]], bool],
        wanted: str,
        timeout: float = 60.0,  # noqa: ASYNC109 (deadline)
    ) -> list[Any]:
        return await kafka_helpers.consume_until(
            self.bootstrap, topic, enough, wanted, timeout=timeout
        )

    async def consume_events(
        self,
        topic: str,
        n: int,
        timeout: float = 60.0,  # noqa: ASYNC109 (deadline)
    ) -> list[bytes]:
        return await kafka_helpers.consume_events(self.bootstrap, topic, n, timeout=timeout)


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


#: Skips that are legitimate only on a machine without ../shared (no person model, no PETS
#: video, no TimescaleDB source): the README promises such a machine still works.
_SHARED = Path(__file__).resolve().parents[2] / "shared"
_EXPECTED_WITHOUT_SHARED = ("YOLOX-nano model not present", "PETS 2009 clip not present",
                            "timescaledb is not available")  # fmt: skip


def _unexpected_skips(config: pytest.Config) -> list[str]:
    """In CI every skip is a missing install step unless ../shared is absent (see above)."""
    import os

    if not os.environ.get("CI"):
        return []
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    out = []
    for report in skipped:
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        if not _SHARED.exists() and reason.startswith(_EXPECTED_WITHOUT_SHARED):
            continue
        out.append(f"{report.nodeid}: {reason}")
    return out


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    unexpected = _unexpected_skips(config)
    if unexpected:
        terminalreporter.section("unexpected skips (CI fails on these)", red=True)
        for line in unexpected:
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == 0 and _unexpected_skips(session.config):
        session.exitstatus = 1
