"""Prometheus metrics of the occupancy worker (one set per process, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "tp_worker_events_total",
    "Wi-Fi session events consumed, by outcome (stored, duplicate, rejected).",
    ["outcome"],
)
REJECTED = Counter(
    "tp_worker_rejected_total", "Events sent to the dead-letter topic, by reason.", ["reason"]
)
BATCHES = Counter("tp_worker_batches_total", "Batches written to PostgreSQL.")
BATCH_SIZE = Histogram(
    "tp_worker_batch_size",
    "Events per batch taken from Kafka.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
DB_WRITE_SECONDS = Histogram(
    "tp_worker_db_write_seconds",
    "Duration of one batch transaction (insert, merge, rollups, commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DB_ERRORS = Counter("tp_worker_db_errors_total", "Failed batch transactions (retried).")
MINUTES_RECOMPUTED = Counter(
    "tp_worker_minutes_recomputed_total", "occupancy_minute rows recomputed."
)
LIVE_UPDATES = Counter("tp_worker_live_updates_total", "OccupancyUpdateV1 messages emitted.")
