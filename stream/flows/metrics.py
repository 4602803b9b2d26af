"""Prometheus metrics of the flows worker (one set per process, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "tp_flows_events_total",
    "Wi-Fi session events consumed by the flows worker, by outcome (merged, rejected, "
    "too_late: arrived after its hour was final).",
    ["outcome"],
)
BATCHES = Counter("tp_flows_batches_total", "Batches merged into PostgreSQL.")
DB_SECONDS = Histogram(
    "tp_flows_db_seconds",
    "Duration of one flows transaction, by kind (batch, recompute).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DB_ERRORS = Counter("tp_flows_db_errors_total", "Failed flows transactions (retried).")
HOURS_RECOMPUTED = Counter("tp_flows_hours_recomputed_total", "flow_hourly rows recomputed.")
SKIPPED_FINAL = Counter(
    "tp_flows_late_final_total", "Dirty hours not recomputed because they were already final."
)
UPDATES = Counter("tp_flows_updates_total", "FlowsHourlyV1 messages emitted.")
SUPPRESSED = Counter(
    "tp_flows_od_cells_suppressed_total", "OD cells left out of live updates (below k)."
)
RETENTION_ROWS = Counter(
    "tp_retention_removed_total", "Rows or partitions removed by retention, by table.", ["table"]
)
