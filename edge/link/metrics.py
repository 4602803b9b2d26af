"""Prometheus metrics of the edge uplink (one set per agent process, whatever its links)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTBOX_DEPTH = Gauge("tp_edge_outbox_depth", "Events waiting in the outbox")
OUTBOX_OLDEST = Gauge("tp_edge_outbox_oldest_seconds", "Age of the oldest queued event")
OUTBOX_DROPPED = Counter("tp_edge_outbox_dropped_total", "Events dropped: outbox full or too old")
PUBLISHED = Counter("tp_edge_mqtt_acked_total", "Events acknowledged by the broker (PUBACK)")
BATCHES = Counter("tp_edge_mqtt_messages_total", "Event messages published (one may be a batch)")
CONNECTED = Gauge("tp_edge_mqtt_connected", "1 while the broker connection is up")
LINK_ERRORS = Counter("tp_edge_link_errors_total", "Uplink errors by reason", ["reason"])
NOT_DELIVERED = Counter(
    "tp_edge_mqtt_not_delivered_total",
    "PUBACKs saying the broker did not deliver the event (kept in the outbox, sent again)",
    ["reason"],
)
