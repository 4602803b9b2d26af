"""Ingest of the occupancy worker's sink, TimescaleDB against plain PostgreSQL, same run.

Why each choice (an unfair comparison measures the harness, not the storage):

* Both databases are fresh and migrated the same way, on the same server, so neither
  carries history (indexes, chunks) the other lacks.
* The same simulator events go into both, in the worker's batches (2,000, the stream
  runtime's default) through :class:`OccupancySink` (unnest raw insert, session merge,
  dirty minutes, rollup recompute): exactly the statements the worker runs.
* Rollups are recomputed every :data:`FLUSH_EVERY_BATCHES` batches on both, counted by a
  batch clock. The worker flushes once a second; with a wall clock the slower backend
  would flush less often per event and so do less work, biasing the ratio toward it.
* Round 0 is a warm-up, not timed: it creates the day's chunks (TimescaleDB) or the
  partitions the worker creates on start (plain) and fills the caches. Timed rounds then
  write new sessions (ids derived per round) an hour apart each, within the same day.
* Rounds alternate which backend goes first, so a burst of machine noise (other jobs on
  this shared 2-core machine) hits both alike. The headline ratio is the median of the
  per-round ratios (each round's two passes ran back to back, under the same load, with
  the same number of sessions already stored); the medians of the rates are reported too.
* When the server runs on this machine, the CPU seconds its backend process spent are read
  from /proc as well: CPU time is much less moved by other jobs than wall-clock time, so
  its ratio tells whether a wall-clock ratio below 1 is TimescaleDB or the neighbours.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from device_configs import DeviceConfigs
from edge.simulator.generator import SimConfig, WifiSessionGenerator
from edge.simulator.identity import SimulatedClockPseudonymiser
from stream.storage.partitions import ensure_event_partitions
from stream.wifi.batch import WifiSessionEvent
from stream.wifi.sink import OccupancySink

EVENTS = 20_000
#: The stream runtime's default batch size (stream/runtime.py).
BATCH = 2_000
#: The worker flushes rollups once a second; 5 batches is a second's worth at ~10k events/s.
FLUSH_EVERY_BATCHES = 5
TIMED_ROUNDS = 6
#: Simulated start: 09:00 in Ho Chi Minh City, a busy Saturday morning.
SIM_START = datetime(2026, 3, 7, 2, tzinfo=UTC)
#: Shift between rounds: longer than the ~16 simulated minutes 20,000 events span.
ROUND_SHIFT = timedelta(hours=1)
SESSION_TIMEOUT = timedelta(minutes=15)


def simulated_events(configs: DeviceConfigs, n: int) -> list[WifiSessionEvent]:
    """The first ``n`` events of the Wi-Fi simulator (20 sites, three times demo rates)."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimConfig(start=SIM_START, seed=5, scale=3.0)
        gen = WifiSessionGenerator(configs, sim, SimulatedClockPseudonymiser(Path(tmp)))
        return [e for _, e in zip(range(n), gen, strict=False)]


def for_round(events: Sequence[WifiSessionEvent], round_: int) -> list[WifiSessionEvent]:
    """The events shifted ``round_`` hours later, as new events of new sessions and clients
    (ids hashed with the round, same shapes), so no round merges into another's rows."""
    if round_ == 0:
        return list(events)

    def derive(value: str, length: int) -> str:
        return hashlib.md5(f"{value}/{round_}".encode()).hexdigest()[:length]

    shift = ROUND_SHIFT * round_
    out = []
    for e in events:
        d = e.data
        data = d.model_copy(
            update={
                "client_id": derive(d.client_id, len(d.client_id)),
                "session_id": derive(d.session_id, len(d.session_id)).upper(),
            }
        )
        update = {"id": f"{e.id}-{round_}", "event_time": e.event_time + shift, "data": data}
        out.append(e.model_copy(update=update))
    return out


class _BatchClock:
    """The sink's clock counted in batches written, so both backends flush alike."""

    def __init__(self) -> None:
        self.batches = 0

    def __call__(self) -> float:
        return float(self.batches)


def local_backend_pid(conn: psycopg.AsyncConnection[Any]) -> int | None:
    """The server process of ``conn`` when the server runs on this machine, else None."""
    host = conn.info.host
    local = host.startswith("/") or host in ("127.0.0.1", "localhost", "::1")
    return conn.info.backend_pid if local else None


def server_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) of a local server process, None if not on this machine."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def ingest_once(url: str, events: Sequence[WifiSessionEvent]) -> tuple[float, float | None]:
    """Events/s of one pass through the sink, from the first batch to the last flush, and
    the server backend's CPU seconds for it (None when the server is not local)."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        await ensure_event_partitions(conn, events[0].event_time.date())  # as a worker's start
        pid = local_backend_pid(conn)
        clock = _BatchClock()
        sink = OccupancySink(
            conn, SESSION_TIMEOUT, rollup_interval=FLUSH_EVERY_BATCHES, clock=clock
        )
        cpu0 = server_cpu_s(pid)
        t = time.perf_counter()
        for i in range(0, len(events), BATCH):
            await sink.write(events[i : i + BATCH])
            clock.batches += 1
        await sink.flush()
        rate = len(events) / (time.perf_counter() - t)
        cpu1 = server_cpu_s(pid)
        return rate, (cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None)
    finally:
        await conn.close()


async def ingest_ratio(
    urls: dict[str, str], configs: DeviceConfigs, quick: bool = False
) -> dict[str, Any]:
    """``urls`` maps "timescaledb" and "plain" to fresh migrated databases."""
    n, rounds = (4_000, 2) if quick else (EVENTS, TIMED_ROUNDS)
    print(f"[bench] storage: ingest, {n} events x {rounds} rounds per backend ...", flush=True)
    base = simulated_events(configs, n)
    rates: dict[str, list[float]] = {b: [] for b in urls}
    cpu: dict[str, list[float]] = {b: [] for b in urls}
    order = list(urls)
    for round_ in range(rounds + 1):
        events = for_round(base, round_)
        for backend in order if round_ % 2 else reversed(order):
            rate, cpu_s = await ingest_once(urls[backend], events)
            if round_:  # round 0 warms up
                rates[backend].append(rate)
                if cpu_s is not None:
                    cpu[backend].append(cpu_s)
    ts, plain = rates["timescaledb"], rates["plain"]
    out: dict[str, Any] = {
        "ingest_events": n,
        "ingest_rounds": rounds,
        "ingest_events_per_s_timescale": round(statistics.median(ts)),
        "ingest_events_per_s_plain": round(statistics.median(plain)),
        "ingest_rounds_events_per_s": {b: [round(r) for r in v] for b, v in rates.items()},
        "ingest_events_per_s_timescale_vs_plain": round(
            statistics.median(a / b for a, b in zip(ts, plain, strict=True)), 3
        ),
    }
    if len(cpu["timescaledb"]) == len(cpu["plain"]) == rounds:
        per_k = {b: statistics.median(v) * 1e6 / n for b, v in cpu.items()}
        out["ingest_server_cpu_ms_per_1k_events"] = {b: round(v, 1) for b, v in per_k.items()}
        # CPU per event, TimescaleDB / plain: 1.1 would be 10% more server CPU per event.
        out["ingest_server_cpu_timescale_vs_plain"] = round(
            per_k["timescaledb"] / per_k["plain"], 3
        )
    return out
