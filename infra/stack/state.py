"""What the stack is made of: the configuration asked for and the components found.

``<data_dir>/stack.json`` is the contract between ``stack up``, ``stack down``,
``stack status`` and every service (``core.settings`` reads ``database_url`` from it).
It records, per component, whether *we* started it and exactly how to stop it, so
``down`` never touches a broker someone else runs.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.settings import Settings, read_stack_state
from infra.stack.procs import ProcessId, split_hostport

STATE_FILE = "stack.json"
COMPONENTS = ("mqtt", "kafka", "postgres")


@dataclass(frozen=True)
class StackConfig:
    """Where each service should listen and where its files live.

    ``pg_port`` and ``kafka_libs`` are not in :class:`Settings` (only the stack needs
    them): ``TP_PG_PORT`` and ``TP_KAFKA_LIBS`` set them, so tests can start private
    servers on spare ports while sharing one jar cache.
    """

    data_dir: Path
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    pg_port: int = 5432
    database_url: str | None = None
    kafka_libs: Path | None = None
    kafka_brokers: int = 1  # > 1: a KRaft cluster on consecutive ports (kafka_cluster.py)
    #: Whether the single broker creates topics a client merely asks for (dev convenience);
    #: off, it behaves like a production cluster, where only explicit creation makes one.
    kafka_auto_create: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> StackConfig:
        kafka_host, kafka_port = split_hostport(settings.kafka_bootstrap.split(",")[0], 9092)
        libs = os.environ.get("TP_KAFKA_LIBS")
        return cls(
            data_dir=settings.data_dir.resolve(),
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
            kafka_host=kafka_host,
            kafka_port=kafka_port,
            pg_port=int(os.environ.get("TP_PG_PORT", "5432")),
            database_url=settings.database_url_env,
            kafka_libs=Path(libs).resolve() if libs else None,
        )

    @property
    def kafka_bootstrap(self) -> str:
        hosts = (f"{self.kafka_host}:{self.kafka_port + i}" for i in range(self.kafka_brokers))
        return ",".join(hosts)

    @property
    def libs_dir(self) -> Path:
        return self.kafka_libs or self.data_dir / "kafka" / "libs"


@dataclass
class Component:
    """One running service as ``up`` left it."""

    name: str
    impl: str
    address: str
    version: str
    managed: bool
    process: ProcessId | None = None
    stop_signal: int = int(signal.SIGTERM)
    stop_command: list[str] | None = None
    log: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["process"] = asdict(self.process) if self.process else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Component:
        proc = data.get("process")
        return cls(**{**data, "process": ProcessId(**proc) if proc else None})


@dataclass
class StackState:
    components: dict[str, Component] = field(default_factory=dict)
    database_url: str | None = None

    @classmethod
    def load(cls, data_dir: Path) -> StackState:
        raw = read_stack_state(data_dir)
        comps = raw.get("components")
        url = raw.get("database_url")
        return cls(
            components={
                name: Component.from_json(c)
                for name, c in (comps.items() if isinstance(comps, dict) else [])
                if name in COMPONENTS and isinstance(c, dict)
            },
            database_url=str(url) if url else None,
        )

    def save(self, data_dir: Path) -> None:
        """Write atomically: services may read the file while ``up`` rewrites it."""
        if not self.components:
            (data_dir / STATE_FILE).unlink(missing_ok=True)
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "database_url": self.database_url,
            "components": {n: c.to_json() for n, c in self.components.items()},
        }
        tmp = data_dir / f".{STATE_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, data_dir / STATE_FILE)
