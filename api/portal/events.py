"""Publish funnel events over MQTT, like every edge device, for the ingest gateway.

The database rows written by the portal are the source of the funnel numbers, so a broker
outage never loses a conversion; the published events feed everyone downstream (Kafka,
the city data platform). A failed publish is counted, logged, and never blocks a visitor.
"""

from __future__ import annotations

import logging
import threading
import uuid

import paho.mqtt.client as mqtt
from prometheus_client import Counter

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from schemas.codec import encode_event
from schemas.envelope import EventBase
from schemas.topics import MqttTopic

log = logging.getLogger(__name__)

PUBLISHED = Counter(
    "tp_portal_events_published_total", "Portal funnel events handed to MQTT", ["type", "outcome"]
)


class FunnelPublisher:
    """A paho client on its own network thread; QoS 1 so the broker acknowledges each event."""

    def __init__(self, mqtt_settings: MqttClientSettings):
        self.client = make_mqtt_client(mqtt_settings, f"tp-portal-{uuid.uuid4().hex[:8]}")
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.connected.clear()
        self.client.connect_async(mqtt_settings.host, mqtt_settings.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        if not getattr(rc, "is_failure", False):
            self.connected.set()
        else:
            log.warning("MQTT broker refused the portal publisher: %s", rc)

    def publish(self, event: EventBase) -> None:
        topic = MqttTopic.build(event.site, event.device_kind, event.device, event.mqtt_stream)  # type: ignore[arg-type]
        info = self.client.publish(str(topic), encode_event(event), qos=1)
        ok = info.rc == mqtt.MQTT_ERR_SUCCESS
        PUBLISHED.labels(event.type, "queued" if ok else "error").inc()
        if not ok:
            log.warning("funnel event %s not queued for MQTT (rc=%s)", event.type, info.rc)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
