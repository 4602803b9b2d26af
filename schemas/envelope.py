"""The envelope every TourPulse event travels in.

Every event carries an id (so any consumer can deduplicate replays), the event time set by
the source (not by whoever relays it), the ingest time set by the gateway, and the site and
device it came from. Concrete events subclass :class:`EventBase`, pin ``type`` and
``version`` with ``Literal`` and give ``data`` a model of their own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.topics import DeviceKind, KafkaTopic, MqttStream

#: Slug identifiers keep topics, metric labels and URLs safe without escaping.
SiteId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
DeviceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
#: Pseudonymous client ids are hex HMAC digests made at the edge; never a raw identifier.
PseudonymousId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,64}$")]


def new_event_id() -> str:
    """Return a fresh event id: time-ordered UUIDv7 when available, else UUIDv4."""
    uuid7 = getattr(uuid, "uuid7", None)
    return str(uuid7() if uuid7 else uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base for everything on the wire: unknown fields are ignored, values are immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class EventBase(WireModel):
    """Fields shared by all events; subclasses fix ``type``, ``version`` and ``data``."""

    #: Where the event goes on Kafka and which MQTT stream carries it (set per subclass).
    kafka_topic: ClassVar[KafkaTopic]
    mqtt_stream: ClassVar[MqttStream]
    device_kind: ClassVar[DeviceKind | None] = None

    id: Annotated[str, StringConstraints(min_length=8, max_length=64)] = Field(
        default_factory=new_event_id, description="Unique event id; consumers dedup on it."
    )
    type: str
    version: int
    site: SiteId
    device: DeviceId
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="What produced the event, e.g. 'edge.wifi.radius' or 'sim.wifi'."
    )
    event_time: AwareDatetime = Field(description="When it happened, by the source's clock.")
    ingest_time: AwareDatetime | None = Field(
        default=None, description="When the ingest gateway accepted it (set by the gateway)."
    )

    def partition_key(self) -> bytes:
        """Kafka key: the site, so every event of a site lands in one partition, in order."""
        return self.site.encode()
