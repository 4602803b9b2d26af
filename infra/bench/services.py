"""Run TourPulse services as subprocesses for a benchmark, isolated by namespace and database.

The services are started through the real ``tourpulse`` CLI (what an operator runs), with
``TP_TOPIC_NAMESPACE`` and ``DATABASE_URL`` pointing at throwaway Kafka topics and a fresh
database, so a benchmark never disturbs a running demo and vice versa.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from core.ports import free_port
from infra.bench.context import BenchError

if TYPE_CHECKING:
    from core.kafka_client import KafkaClientSettings


class Service:
    """One ``tourpulse <command>`` child with a /healthz endpoint and a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log_dir: Path,
        processes: int = 1,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()  # a fixed port keeps a run inside its port range
        #: A supervisor with N children serves /healthz on port, port + 1, ... port + N - 1.
        self.ports = [self.port + i for i in range(processes)]
        self.log_path = log_dir / f"{name}.log"
        argv = [sys.executable, "-m", "infra.cli", *args, "--metrics-port", str(self.port)]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_healthy(self, timeout: float) -> None:
        """Until every process answers 200 on /healthz; fail early if the service died."""
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                url = f"http://127.0.0.1:{pending[0]}/healthz"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        pending.pop(0)
                        continue
            time.sleep(0.5)
        if pending:
            raise BenchError(f"{self.name} not healthy within {timeout:.0f} s: {self.tail()}")

    def metric(self, name: str) -> float:
        """A counter's current value from the service's /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return counter_value(resp.read().decode(), name)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the services drain and exit cleanly), SIGKILL if that takes too long."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._log.close()

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n    " + "\n    ".join(text)


def counter_value(exposition: str, name: str) -> float:
    """Sum of a metric's samples (all label sets) in Prometheus text format; 0 if absent."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def private_mosquitto(work_dir: Path, port: int | None = None) -> Iterator[tuple[int, int]]:
    """A Mosquitto of our own on a free (or the given) loopback port; yields ``(port, pid)``.

    The shared broker carries whatever else runs on the machine, and the gateway forwards
    every site's topics: their traffic would count as ours. ``max_queued_messages`` is
    raised from 1000 so a lagging subscriber slows the run down instead of losing data.
    """
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise BenchError("mosquitto is not installed (Debian package 'mosquitto')")
    port = port or free_port()
    conf = work_dir / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages 100000\nlog_dest stderr\n{user}"
    )
    with (work_dir / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"private mosquitto did not start: see {log.name}")
                time.sleep(0.1)
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextlib.contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """A new empty database on the same server, dropped afterwards; yields its URL."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def delete_kafka_topics(bootstrap: str | KafkaClientSettings, namespace: str) -> None:
    """Remove the benchmark's namespaced topics so runs do not pile up on the broker."""
    from confluent_kafka.admin import AdminClient

    from core.kafka_client import as_kafka

    admin = AdminClient(as_kafka(bootstrap).librdkafka())
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(namespace + ".")]
    if topics:
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # best effort: a leftover topic is harmless
                future.result()
