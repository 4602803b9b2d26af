"""Captive-portal funnel events: impression → terms accepted → access granted → promo click.

The portal publishes these over MQTT (device kind ``portal``) like any edge device, so the
city data platform sees the funnel on Kafka with the same envelope as every other event.
The client is the pseudonymous id made with the Wi-Fi edge's keyed hash, which is what lets
the funnel join "access granted" with the Wi-Fi session seen by RADIUS for the same phone.
The fourth stage ("Wi-Fi session seen") is not an event of its own: it is that join.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import EventBase, PseudonymousId, WireModel
from schemas.topics import DeviceKind, KafkaTopic, MqttStream

PromoId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
VariantKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,16}$")]
Controller = Literal["meraki", "opennds", "unifi", "rfc8908"]
Language = Literal["vi", "en", "ko", "zh-Hans", "ja"]


class PromoRef(WireModel):
    """Which promo, and which A/B variant of it, a visitor saw or clicked."""

    promo: PromoId
    variant: VariantKey = "a"


class PortalVisitData(WireModel):
    """Shared by every funnel event: who (pseudonymously), through which portal visit."""

    client_id: PseudonymousId = Field(description="Keyed HMAC of the client MAC (daily key).")
    portal_session: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] = Field(
        description="Random id of one splash-page visit; ties the funnel stages together."
    )
    controller: Controller
    language: Language


class ImpressionData(PortalVisitData):
    promos: Annotated[list[PromoRef], Field(max_length=20)] = Field(default_factory=list)


class TermsAcceptedData(PortalVisitData):
    terms_version: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    notice_version: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    marketing_consent: bool = Field(description="The separate, optional, unticked box.")


class AccessGrantedData(PortalVisitData):
    duration_s: Annotated[int, Field(gt=0, le=7 * 86400)]


class PromoClickData(PortalVisitData):
    clicked: PromoRef


class _PortalEvent(EventBase):
    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.PORTAL_FUNNEL
    mqtt_stream: ClassVar[MqttStream] = MqttStream.FUNNEL
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.PORTAL


class PortalImpressionV1(_PortalEvent):
    """The splash page was shown (once per visit and language), with the promos on it."""

    type: Literal["portal.impression"] = "portal.impression"
    version: Literal[1] = 1
    data: ImpressionData


class PortalTermsAcceptedV1(_PortalEvent):
    """The visitor accepted the terms of use (and maybe, separately, marketing)."""

    type: Literal["portal.terms_accepted"] = "portal.terms_accepted"
    version: Literal[1] = 1
    data: TermsAcceptedData


class PortalAccessGrantedV1(_PortalEvent):
    """The controller was told to let the client online."""

    type: Literal["portal.access_granted"] = "portal.access_granted"
    version: Literal[1] = 1
    data: AccessGrantedData


class PortalPromoClickV1(_PortalEvent):
    """The visitor followed a promo card."""

    type: Literal["portal.promo_click"] = "portal.promo_click"
    version: Literal[1] = 1
    data: PromoClickData
