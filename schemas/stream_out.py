"""Messages produced inside the platform (not by devices): dead letters and live occupancy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.envelope import SiteId, WireModel

#: Raw payloads are cut to this size in dead letters so one bad 1 MB message cannot
#: bloat the DLQ; the original size is kept alongside.
DEAD_LETTER_PAYLOAD_CAP = 4096


class DeadLetterV1(WireModel):
    """A message the gateway could not accept, with why and (a capped copy of) what it was."""

    version: int = 1
    reason: Annotated[str, StringConstraints(max_length=64)]
    detail: Annotated[str, StringConstraints(max_length=2000)]
    mqtt_topic: Annotated[str, StringConstraints(max_length=512)]
    received_at: AwareDatetime
    payload_size: Annotated[int, Field(ge=0)]
    payload_b64: str = Field(description="Base64 of the first bytes of the raw payload.")
    payload_truncated: bool


class OccupancyUpdateV1(WireModel):
    """Live occupancy of one site, emitted by the stream worker and fanned out by the API."""

    version: int = 1
    site: SiteId
    connected: Annotated[int, Field(ge=0)] = Field(description="Clients connected now.")
    as_of: datetime = Field(description="Event-time watermark of the site when computed.")
    emitted_at: AwareDatetime
