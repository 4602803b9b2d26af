"""The central pipeline as subprocesses for a benchmark: gateways and workers, one namespace.

Started through the real ``tourpulse`` CLI (what an operator runs) with ``TP_TOPIC_NAMESPACE``
and ``DATABASE_URL`` pointing at throwaway Kafka topics and a fresh database. Several
gateways join one MQTT shared subscription and several worker services one consumer group,
as in the deployment's topology (docs/deployment.md).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg

from core.settings import Settings
from infra.bench.context import BenchError
from infra.bench.cpu import with_children
from infra.bench.services import Service, delete_kafka_topics

SETTLE_TIMEOUT_S = 120.0  # no new rows for this long = events lost
POLL_S = 0.5  # a count over millions of rows is not free: poll gently


class Spine:
    """``gateways`` gateway services and ``workers`` worker services (``procs`` each)."""

    def __init__(
        self,
        settings: Settings,
        ns: str,
        db_url: str,
        log_dir: Path,
        *,
        gateways: int = 1,
        workers: int = 1,
        procs: int = 2,
        ports: list[int] | None = None,
    ) -> None:
        self.settings, self.ns, self.db_url = settings, ns, db_url
        env = {
            "TP_TOPIC_NAMESPACE": ns,
            "DATABASE_URL": db_url,
            "TP_MQTT_HOST": settings.mqtt_host,
            "TP_MQTT_PORT": str(settings.mqtt_port),
            "TP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        }
        self.gateways: list[Service] = []
        self.workers: list[Service] = []
        free = iter(ports or [])  # metrics ports: one per gateway, ``procs`` per worker
        try:
            for n in range(gateways):
                args = ["gateway", "--client-id", f"gw{n}-{ns}", "--share-group", ns]
                name = "gateway" if gateways == 1 else f"gateway{n}"
                args += ["--stats-every", "0"]
                self.gateways.append(Service(name, args, env, log_dir, 1, next(free, None)))
            for gateway in self.gateways:
                gateway.wait_healthy(60)
            for n in range(workers):
                name = "worker" if workers == 1 else f"worker{n}"
                args = ["worker", "--workers", str(procs)]
                port = next(free, None)
                for _ in range(procs - 1):
                    next(free, None)
                self.workers.append(Service(name, args, env, log_dir, procs, port))
            for worker in self.workers:
                worker.wait_healthy(180)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Spine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        services = [*self.workers, *self.gateways]
        for service in services:  # all drain at once, then each is waited for
            if service.proc.poll() is None:
                service.proc.send_signal(signal.SIGTERM)
        for service in services:
            service.stop()
        delete_kafka_topics(self.settings.kafka_bootstrap, self.ns)

    @property
    def gateway(self) -> Service:
        return self.gateways[0]

    def gateway_metric(self, name: str) -> float:
        """A counter summed over every gateway."""
        return sum(g.metric(name) for g in self.gateways)

    def gateway_pids(self) -> set[int]:
        return {g.pid for g in self.gateways}

    def worker_pids(self) -> set[int]:
        return with_children(w.pid for w in self.workers)

    def _stored(self) -> tuple[int, float | None]:
        """Rows of our namespace's sites (the gateway forwards every site's topics), and
        the newest one's ``stored_at`` (epoch seconds), in the same scan."""
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), extract(epoch FROM max(stored_at))::float8"
                " FROM wifi_session_events WHERE site LIKE %s",
                (f"{self.ns}-%",),
            ).fetchone()
        return (int(row[0]), row[1]) if row else (0, None)

    def wait_rows(self, expected: int) -> float:
        """Poll until ``expected`` rows are visible; return when the last was stored (epoch
        seconds). No progress for :data:`SETTLE_TIMEOUT_S` means events were lost: fail
        with the gateways' counters.

        The time is the newest row's ``stored_at``, not the poll's: a count over millions
        of rows and the pause between counts made the poll 1-1.5 s late, which understated
        a 30 s probe's rate by up to 5 %.
        """
        since = time.time()
        last_count, last_change = -1, time.monotonic()
        while True:
            count, last_stored = self._stored()
            if count >= expected and last_stored is not None:
                return last_stored
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > SETTLE_TIMEOUT_S:
                counters = {
                    name: self.gateway_metric(f"tp_gateway_{name}_total")
                    for name in ("received", "forwarded", "dead_lettered", "produce_errors")
                }
                raise BenchError(
                    f"only {count} of {expected} events reached PostgreSQL "
                    f"({time.time() - since:.0f} s after publishing); gateways {counters}; "
                    f"logs in {self.gateway.log_path.parent}"
                )
            time.sleep(POLL_S)
