"""Options of one gateway instance (the CLI's flags, the tests' and benchmarks' knobs).

The broker addresses and credentials are not here: they come from :class:`core.settings.Settings`
through the one MQTT and Kafka client factories.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayConfig:
    """Per-instance options; the broker addresses come from :class:`Settings`."""

    client_id: str
    share_group: str = "tp-gateway"
    partitions: int = 4
    #: How long the broker keeps queueing for a gateway that went away. Short on purpose:
    #: a dead member of a share group keeps receiving its round-robin share until expiry.
    session_expiry_s: int = 300
    #: MQTT 5 Receive Maximum: unacknowledged QoS 1 messages the broker may send us. It
    #: must cover rate x Kafka round trip, or the broker throttles us (Mosquitto's default is 20).
    receive_maximum: int = 2000
    keepalive_s: int = 30
    #: Only this site's topics (a per-site deployment, or test isolation); None: all sites.
    site: str | None = None
    #: Sites of the deployment (device configs); events for others are dead-lettered.
    #: None: no check (tests and tools with synthetic sites).
    known_sites: frozenset[str] | None = None
    metrics_port: int | None = None  # None: no HTTP endpoint (0: any free port)
