"""Typed topic names for MQTT and Kafka.

Topics are built and parsed only here, so a typo cannot create a topic nobody reads.
MQTT: ``tp/v1/<site>/<device-kind>/<device>/<stream>``; Kafka: ``tp.<domain>.<event>.v<n>``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple

MQTT_PREFIX = "tp/v1"
#: The first level of every TourPulse topic, whatever its version.
MQTT_ROOT = MQTT_PREFIX.split("/")[0]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class DeviceKind(StrEnum):
    """What kind of device publishes under a topic (the fourth MQTT level)."""

    WIFI = "wifi"  # a Wi-Fi edge agent or controller bridge
    AP = "ap"  # a single access point reporting directly
    CAMERA = "camera"
    PORTAL = "portal"


class MqttStream(StrEnum):
    """The last MQTT level: which kind of message a device sends or receives."""

    SESSION = "session"  # Wi-Fi session start / interim / stop
    HEARTBEAT = "heartbeat"
    AVAILABILITY = "availability"  # online/offline, also the MQTT Last Will
    CMD = "cmd"  # commands to the device (never forwarded to Kafka)
    VIDEO = "video"  # per-second camera video metadata (counts, motion)
    AUDIO = "audio"  # per-second camera loudness
    EVENT = "event"  # camera incidents and command results
    HEALTH = "health"  # camera-specific health next to the heartbeat
    FUNNEL = "funnel"  # captive-portal funnel events
    PRESENCE = "presence"  # Wi-Fi presence observations (Meraki Scanning API)


class KafkaTopic(StrEnum):
    """Every Kafka topic the platform uses."""

    WIFI_SESSION = "tp.wifi.session.v1"
    DEVICE_HEARTBEAT = "tp.device.heartbeat.v1"
    DEVICE_AVAILABILITY = "tp.device.availability.v1"
    DEAD_LETTER = "tp.ingest.deadletter.v1"
    OCCUPANCY_LIVE = "tp.occupancy.live.v1"
    OCCUPANCY_FUSED = "tp.occupancy.fused.v1"
    ALERT_CHANGES = "tp.alerts.changes.v1"
    CAMERA_METADATA = "tp.camera.metadata.v1"
    CAMERA_AUDIO = "tp.camera.audio.v1"
    CAMERA_EVENT = "tp.camera.event.v1"
    CAMERA_HEALTH = "tp.camera.health.v1"
    PORTAL_FUNNEL = "tp.portal.funnel.v1"
    WIFI_PRESENCE = "tp.wifi.presence.v1"
    FLOWS_HOURLY = "tp.flows.hourly.v1"

    def with_prefix(self, namespace: str | None) -> str:
        """Topic name inside an isolated namespace (tests, parallel demos): ``<ns>.<topic>``."""
        return f"{namespace}.{self.value}" if namespace else self.value


#: Topics whose Kafka records may carry a batch: one device's consecutive events as a JSON
#: array (:mod:`schemas.batch`), as they came in one MQTT message, instead of one record per
#: event. Per-record costs (librdkafka's produce and delivery callback in the gateway, the
#: broker's and the consumer's per-record work) were a third of the gateway's CPU on the
#: busiest topic. A record with a bare JSON object is still one event; consumers of these
#: topics read both (``schemas.batch.decode_record``).
BATCHED_TOPICS: frozenset[KafkaTopic] = frozenset({KafkaTopic.WIFI_SESSION})


class MqttTopic(NamedTuple):
    """A parsed MQTT topic."""

    site: str
    kind: DeviceKind
    device: str
    stream: MqttStream

    def __str__(self) -> str:
        return "/".join((MQTT_PREFIX, self.site, self.kind.value, self.device, self.stream.value))

    @classmethod
    def build(cls, site: str, kind: DeviceKind, device: str, stream: MqttStream) -> MqttTopic:
        """Build a topic, refusing ids that would break the topic hierarchy."""
        for name, value in (("site", site), ("device", device)):
            if not _SLUG.match(value):
                raise ValueError(f"invalid {name} id for an MQTT topic: {value!r}")
        return cls(site, DeviceKind(kind), device, MqttStream(stream))

    @classmethod
    def parse(cls, topic: str) -> MqttTopic:
        """Parse ``tp/v1/<site>/<kind>/<device>/<stream>``; raise ValueError otherwise."""
        parts = topic.split("/")
        if len(parts) != 6 or "/".join(parts[:2]) != MQTT_PREFIX:
            raise ValueError(f"not a TourPulse v1 topic: {topic!r}")
        try:
            return cls.build(parts[2], DeviceKind(parts[3]), parts[4], MqttStream(parts[5]))
        except ValueError as exc:
            raise ValueError(f"malformed TourPulse topic {topic!r}: {exc}") from None


def mqtt_catch_all(share_group: str | None = None, site: str | None = None) -> str:
    """Every topic under ``tp/`` (or every topic of one ``site``, whatever its shape).

    The gateway subscribes to this rather than to the well-formed streams only: a message
    on a wrong-shape topic (5 or 7 levels, ``tp/v2``, an unknown stream) then reaches it
    and is dead-lettered with a reason, instead of being acknowledged by the broker with
    "No matching subscribers" and vanishing without a trace.
    """
    if site is not None and not _SLUG.match(site):
        raise ValueError(f"invalid site id for an MQTT subscription: {site!r}")
    topic_filter = f"{MQTT_ROOT}/+/{site}/#" if site else f"{MQTT_ROOT}/#"
    return f"$share/{share_group}/{topic_filter}" if share_group else topic_filter


def mqtt_subscription(
    stream: MqttStream, share_group: str | None = None, site: str | None = None
) -> str:
    """Wildcard filter for one stream across all devices of every site (or of one ``site``).

    With ``share_group`` it is an MQTT 5 shared subscription, so several gateways split the
    load instead of each receiving every message. ``site`` confines a gateway to one site
    (a per-site deployment, or test isolation on a shared broker).
    """
    if site is not None and not _SLUG.match(site):
        raise ValueError(f"invalid site id for an MQTT subscription: {site!r}")
    topic_filter = f"{MQTT_PREFIX}/{site or '+'}/+/+/{stream.value}"
    return f"$share/{share_group}/{topic_filter}" if share_group else topic_filter
