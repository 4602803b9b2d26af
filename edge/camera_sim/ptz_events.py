"""ONVIF PTZ and Events (PullPoint) operations of the simulated camera."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from edge.camera_sim.ptz import Position
from edge.camera_sim.soap import Request, SoapFault, parse_duration, xml_time

if TYPE_CHECKING:
    from edge.camera_sim.server import CameraSim

MAX_PULL_WAIT_S = 5.0  # cap on a PullMessages long-poll, below typical client read timeouts
MAX_QUEUED = 100  # per subscription; older messages are dropped (a real camera does the same)
PT_SPACE = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
Z_SPACE = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"


def _vector(pos: Position) -> str:
    return (
        f'<tt:PanTilt x="{pos.pan:.4f}" y="{pos.tilt:.4f}" space="{PT_SPACE}"/>'
        f'<tt:Zoom x="{pos.zoom:.4f}" space="{Z_SPACE}"/>'
    )


def _float_attr(req: Request, path: str, name: str) -> float:
    raw = req.attr(path, name)
    try:
        value = float(raw) if raw is not None else 0.0
    except ValueError:
        raise SoapFault("ter:InvalidArgVal", f"{path}@{name} is not a number") from None
    if not -1.0 <= value <= 1.0:
        raise SoapFault("ter:InvalidArgVal", f"{path}@{name}={value} outside [-1, 1]")
    return value


def get_nodes(_sim: CameraSim, _req: Request) -> str:
    return (
        '<tptz:GetNodesResponse><tptz:PTZNode token="node_1" FixedHomePosition="false">'
        "<tt:Name>head</tt:Name><tt:SupportedPTZSpaces/>"
        "<tt:MaximumNumberOfPresets>32</tt:MaximumNumberOfPresets>"
        "<tt:HomeSupported>false</tt:HomeSupported></tptz:PTZNode></tptz:GetNodesResponse>"
    )


def get_presets(sim: CameraSim, _req: Request) -> str:
    items = "".join(
        f'<tptz:Preset token="{token}"><tt:Name>{name}</tt:Name>'
        f"<tt:PTZPosition>{_vector(pos)}</tt:PTZPosition></tptz:Preset>"
        for token, (name, pos) in sim.head.presets.items()
    )
    return f"<tptz:GetPresetsResponse>{items}</tptz:GetPresetsResponse>"


def goto_preset(sim: CameraSim, req: Request) -> str:
    token = req.text("PresetToken") or ""
    if token not in sim.head.presets:
        raise SoapFault("ter:NoToken", f"no preset with token {token!r}")
    sim.head.goto(sim.head.presets[token][1])
    sim.publish_ptz("PresetReached", {"PresetToken": token})
    return "<tptz:GotoPresetResponse/>"


def continuous_move(sim: CameraSim, req: Request) -> str:
    velocity = Position(
        _float_attr(req, "Velocity/PanTilt", "x"),
        _float_attr(req, "Velocity/PanTilt", "y"),
        _float_attr(req, "Velocity/Zoom", "x"),
    )
    timeout = parse_duration(req.text("Timeout"), default=1.0)
    if not 0 < timeout <= 60:
        raise SoapFault("ter:InvalidArgVal", f"Timeout {timeout}s outside (0, 60]")
    sim.head.move(velocity, timeout)
    return "<tptz:ContinuousMoveResponse/>"


def absolute_move(sim: CameraSim, req: Request) -> str:
    pos = Position(
        _float_attr(req, "Position/PanTilt", "x"),
        _float_attr(req, "Position/PanTilt", "y"),
        max(0.0, _float_attr(req, "Position/Zoom", "x")),
    )
    sim.head.goto(pos)
    return "<tptz:AbsoluteMoveResponse/>"


def stop(sim: CameraSim, _req: Request) -> str:
    sim.head.stop()
    return "<tptz:StopResponse/>"


def get_status(sim: CameraSim, _req: Request) -> str:
    state = "MOVING" if sim.head.moving else "IDLE"
    return (
        f"<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>{_vector(sim.head.position())}"
        f"</tt:Position><tt:MoveStatus><tt:PanTilt>{state}</tt:PanTilt><tt:Zoom>{state}"
        f"</tt:Zoom></tt:MoveStatus><tt:UtcTime>{xml_time(datetime.now(UTC))}</tt:UtcTime>"
        "</tptz:PTZStatus></tptz:GetStatusResponse>"
    )


@dataclass
class Subscription:
    expires: float
    queue: list[str] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, message: str) -> None:
        self.queue = [*self.queue, message][-MAX_QUEUED:]
        self.wakeup.set()


def notification(topic: str, source: dict[str, str], data: dict[str, str]) -> str:
    """One wsnt:NotificationMessage in the ONVIF message format."""
    src = "".join(f'<tt:SimpleItem Name="{k}" Value="{v}"/>' for k, v in source.items())
    dat = "".join(f'<tt:SimpleItem Name="{k}" Value="{v}"/>' for k, v in data.items())
    return (
        "<wsnt:NotificationMessage><wsnt:Topic "
        'Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
        f"{topic}</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{xml_time(datetime.now(UTC))}" PropertyOperation="Changed">'
        f"<tt:Source>{src}</tt:Source><tt:Data>{dat}</tt:Data></tt:Message>"
        "</wsnt:Message></wsnt:NotificationMessage>"
    )


def get_event_service_capabilities(_sim: CameraSim, _req: Request) -> str:
    return (
        '<tev:GetServiceCapabilitiesResponse><tev:Capabilities WSSubscriptionPolicySupport="false"'
        ' WSPullPointSupport="true" WSPausableSubscriptionManagerInterfaceSupport="false"'
        ' MaxNotificationProducers="0" MaxPullPoints="10"/></tev:GetServiceCapabilitiesResponse>'
    )


def get_event_properties(_sim: CameraSim, _req: Request) -> str:
    return (
        "<tev:GetEventPropertiesResponse><tev:TopicNamespaceLocation>"
        "http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation>"
        "<wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>"
        '<wstop:TopicSet xmlns:wstop="http://docs.oasis-open.org/wsn/t-1">'
        '<tns1:VideoSource><MotionAlarm wstop:topic="true"/></tns1:VideoSource>'
        '<tns1:AudioAnalytics><Audio><DetectedSound wstop:topic="true"/></Audio>'
        "</tns1:AudioAnalytics></wstop:TopicSet>"
        "<wsnt:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
        "</wsnt:TopicExpressionDialect><tev:MessageContentFilterDialect>"
        "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter"
        "</tev:MessageContentFilterDialect><tev:MessageContentSchemaLocation>"
        "http://www.onvif.org/onvif/ver10/schema/onvif.xsd</tev:MessageContentSchemaLocation>"
        "</tev:GetEventPropertiesResponse>"
    )


def create_pull_point_subscription(sim: CameraSim, req: Request) -> str:
    ttl = parse_duration(req.text("InitialTerminationTime"), default=60.0)
    sub_id = secrets.token_hex(8)
    sub = Subscription(expires=time.monotonic() + ttl)
    sim.subscriptions[sub_id] = sub
    sub.push(sim.motion_message())  # initial state, as ONVIF properties are announced
    now = datetime.now(UTC)
    return (
        "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>"
        f"{sim.base_url}/onvif/subscription/{sub_id}</wsa:Address></tev:SubscriptionReference>"
        f"<wsnt:CurrentTime>{xml_time(now)}</wsnt:CurrentTime><wsnt:TerminationTime>"
        f"{xml_time(now + timedelta(seconds=ttl))}</wsnt:TerminationTime>"
        "</tev:CreatePullPointSubscriptionResponse>"
    )


async def pull_messages(sim: CameraSim, sub: Subscription, req: Request) -> str:
    wait = min(parse_duration(req.text("Timeout"), default=1.0), MAX_PULL_WAIT_S)
    try:
        limit = int(req.text("MessageLimit") or "10")
    except ValueError:
        raise SoapFault("ter:InvalidArgVal", "MessageLimit is not an integer") from None
    if not sub.queue:
        sub.wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sub.wakeup.wait(), timeout=wait)
    taken, sub.queue = sub.queue[:limit], sub.queue[limit:]
    now = datetime.now(UTC)
    left = timedelta(seconds=max(0.0, sub.expires - time.monotonic()))
    return (
        f"<tev:PullMessagesResponse><tev:CurrentTime>{xml_time(now)}</tev:CurrentTime>"
        f"<tev:TerminationTime>{xml_time(now + left)}</tev:TerminationTime>"
        f"{''.join(taken)}</tev:PullMessagesResponse>"
    )


def renew(sub: Subscription, req: Request) -> str:
    ttl = parse_duration(req.text("TerminationTime"), default=60.0)
    sub.expires = time.monotonic() + ttl
    now = datetime.now(UTC)
    return (
        f"<wsnt:RenewResponse><wsnt:TerminationTime>{xml_time(now + timedelta(seconds=ttl))}"
        f"</wsnt:TerminationTime><wsnt:CurrentTime>{xml_time(now)}</wsnt:CurrentTime>"
        "</wsnt:RenewResponse>"
    )


def set_synchronization_point(sim: CameraSim, sub: Subscription) -> str:
    sub.push(sim.motion_message())
    return "<tev:SetSynchronizationPointResponse/>"
