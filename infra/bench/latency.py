"""End-to-end latency of sampled events: send time at the edge -> ``stored_at`` in PostgreSQL.

Both clocks are this machine's (the database's ``now()`` at the worker's batch transaction
and the sender's ``time.time()``), so differences are latencies. Percentiles cover the whole
measured run; the per-minute p95 shows drift (a queue building up when a stage does not
keep up), which a whole-run figure hides.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import psycopg

from infra.bench.context import BenchError


def stored_times(db_url: str, ids: Sequence[str]) -> dict[str, float]:
    """``stored_at`` (epoch seconds) of the given event ids, via one join on a temp table."""
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE TEMP TABLE bench_ids (event_id text PRIMARY KEY) ON COMMIT DROP")
        with conn.cursor().copy("COPY bench_ids (event_id) FROM STDIN") as copy:
            for event_id in ids:
                copy.write_row((event_id,))
        rows = conn.execute(
            "SELECT e.event_id, min(extract(epoch FROM e.stored_at))::float8"
            " FROM wifi_session_events e JOIN bench_ids USING (event_id) GROUP BY e.event_id"
        ).fetchall()
    return {str(event_id): float(t) for event_id, t in rows}


def summarise(
    samples: Sequence[tuple[str, float]], stored: dict[str, float], start: float
) -> tuple[dict[str, float], list[float]]:
    """Whole-run percentiles (ms) and the p95 of each minute since ``start`` (by send time).

    Every sampled event must have been stored: a missing one is a loss, not a statistic.
    """
    missing = [event_id for event_id, _ in samples if event_id not in stored]
    if missing:
        raise BenchError(f"{len(missing)} of {len(samples)} sampled events are not stored")
    latencies = [(stored[event_id] - sent) * 1000 for event_id, sent in samples]
    minutes: dict[int, list[float]] = {}
    for (_, sent), ms in zip(samples, latencies, strict=True):
        minutes.setdefault(int((sent - start) // 60), []).append(ms)
    return percentiles(latencies), [p95(minutes[m]) for m in sorted(minutes)]


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50": round(q[49], 1),
        "p95": round(q[94], 1),
        "p99": round(q[98], 1),
        "max": round(ordered[-1], 1),
        "samples": len(ordered),
    }


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=20, method="inclusive")[18], 1)
