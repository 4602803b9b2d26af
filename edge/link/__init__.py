"""Store-and-forward uplink shared by all edge agents: SQLite outbox + MQTT 5 publisher.

See :mod:`edge.link.publisher` for the usage example and the delivery guarantees.
"""

from edge.link.config import LinkIdentity, MqttLinkConfig
from edge.link.outbox import Outbox, Queued
from edge.link.publisher import MqttLink, StatsProvider

__all__ = ["LinkIdentity", "MqttLink", "MqttLinkConfig", "Outbox", "Queued", "StatsProvider"]
