"""Camera events: per-second video metadata, audio loudness, incidents, commands, health.

Telemetry (metadata, loudness, health) is sent once per second or so and a consumer may keep
only the latest; incidents (loud noise, ONVIF motion/tamper) and command outcomes are events
that must not be dropped. Commands travel to the camera on the ``cmd`` stream; a command the
agent cannot honour comes back as a :class:`CameraCommandResultV1` with ``ok=False``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from schemas.envelope import EventBase, WireModel
from schemas.topics import DeviceKind, KafkaTopic, MqttStream

Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Count = Annotated[int, Field(ge=0)]
Unit = Annotated[float, Field(ge=-1.0, le=1.0)]


class LineCount(WireModel):
    """Crossings of one configured virtual line during the window (direction per config)."""

    line: Name
    in_count: Count = Field(description="Crossings in the configured 'in' direction.")
    out_count: Count


class CalibratedCount(WireModel):
    """The raw count corrected by the preset's calibration, with a prediction interval."""

    target: Name = Field(description="'people' (whole frame) or the zone that was calibrated.")
    value: Annotated[float, Field(ge=0)]
    low: Annotated[float, Field(ge=0)]
    high: Annotated[float, Field(ge=0)]
    level: Annotated[float, Field(gt=0, lt=1)] = Field(description="Coverage, e.g. 0.9.")
    labelled_frames: Count = Field(description="Hand-counted frames the fit rests on.")


class VideoMetadata(WireModel):
    window_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    preset: Name | None = Field(default=None, description="Preset the counts refer to.")
    zones: dict[str, Count] = Field(default_factory=dict, description="People inside each zone.")
    lines: list[LineCount] = Field(default_factory=list)
    people: Count = Field(default=0, description="Tracked people in the whole frame.")
    motion: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.0, description="Fraction of the frame that moved (foreground pixels)."
    )
    fps: Annotated[float, Field(ge=0)] = 0.0
    lag_s: Annotated[float, Field(ge=0)] = Field(
        default=0.0, description="How far processing runs behind the stream (queue age)."
    )
    counter: Literal["detector", "motion"] = Field(
        default="motion",
        description="What counted: the person detector, or motion blobs (its no-model "
        "fallback, which under-counts crowds and people standing still).",
    )
    calibrated: CalibratedCount | None = Field(
        default=None, description="Present when the preset has a calibration."
    )


class CameraMetadataV1(EventBase):
    """Counts from the video analysis, once per second."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.CAMERA_METADATA
    mqtt_stream: ClassVar[MqttStream] = MqttStream.VIDEO
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.CAMERA

    type: Literal["camera.metadata"] = "camera.metadata"
    version: Literal[1] = 1
    data: VideoMetadata


class AudioLevel(WireModel):
    window_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    rms_dbfs: Annotated[float, Field(ge=-120, le=0)]
    peak_dbfs: Annotated[float, Field(ge=-120, le=0)]


class CameraAudioLevelV1(EventBase):
    """Loudness of the camera microphone over one window (dB relative to full scale)."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.CAMERA_AUDIO
    mqtt_stream: ClassVar[MqttStream] = MqttStream.AUDIO
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.CAMERA

    type: Literal["camera.audio.level"] = "camera.audio.level"
    version: Literal[1] = 1
    data: AudioLevel


class LoudNoise(WireModel):
    peak_dbfs: Annotated[float, Field(ge=-120, le=0)]
    baseline_dbfs: Annotated[float, Field(ge=-120, le=0)] = Field(
        description="Running median loudness the jump was measured against."
    )
    rise_db: Annotated[float, Field(ge=0)]


class CameraLoudNoiseV1(EventBase):
    """A sudden loud noise: a window much louder than the recent baseline."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.CAMERA_EVENT
    mqtt_stream: ClassVar[MqttStream] = MqttStream.EVENT
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.CAMERA

    type: Literal["camera.loud_noise"] = "camera.loud_noise"
    version: Literal[1] = 1
    data: LoudNoise


class OnvifEvent(WireModel):
    kind: Literal["motion", "tamper", "audio", "other"]
    topic: Annotated[str, StringConstraints(max_length=256)] = Field(
        description="ONVIF topic, e.g. tns1:VideoSource/MotionAlarm."
    )
    active: bool | None = None
    source: dict[str, str] = Field(default_factory=dict)


class CameraOnvifEventV1(EventBase):
    """An event the camera itself raised (ONVIF PullPoint): motion, tamper, audio trigger."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.CAMERA_EVENT
    mqtt_stream: ClassVar[MqttStream] = MqttStream.EVENT
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.CAMERA

    type: Literal["camera.onvif"] = "camera.onvif"
    version: Literal[1] = 1
    data: OnvifEvent


class GotoPreset(WireModel):
    action: Literal["goto_preset"]
    preset: Name


class Move(WireModel):
    """Continuous move at a speed in [-1, 1] per axis, stopped after ``timeout_s``."""

    action: Literal["move"]
    pan: Unit = 0.0
    tilt: Unit = 0.0
    zoom: Unit = 0.0
    timeout_s: Annotated[float, Field(gt=0, le=10)] = 1.0


class Stop(WireModel):
    action: Literal["stop"]


class TourStart(WireModel):
    action: Literal["tour_start"]
    tour: Name


class TourStop(WireModel):
    action: Literal["tour_stop"]


CommandAction = Annotated[
    GotoPreset | Move | Stop | TourStart | TourStop, Field(discriminator="action")
]


class CameraCommand(WireModel):
    command_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    issued_by: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="Who sent it: 'tour-scheduler', a lease holder's id, 'operator'."
    )
    command: CommandAction


class CameraCommandV1(EventBase):
    """A command to a camera (MQTT ``cmd`` stream); recorded on Kafka only as audit."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.CAMERA_EVENT
    mqtt_stream: ClassVar[MqttStream] = MqttStream.CMD
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.CAMERA

    type: Literal["camera.command"] = "camera.command"
    version: Literal[1] = 1
    data: CameraCommand


class CommandResult(WireModel):
    command_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="None when the payload was too broken to carry an id."
    )
    ok: bool
    error: (
        Literal["invalid", "expired", "unknown_preset", "unknown_tour", "camera_error", "busy"]
        | None
    ) = None
    detail: Annotated[str, StringConstraints(max_length=500)] | None = None


class CameraCommandResultV1(EventBase):
    """Outcome of a command: accepted, or rejected with the reason (never silently dropped)."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.CAMERA_EVENT
    mqtt_stream: ClassVar[MqttStream] = MqttStream.EVENT
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.CAMERA

    type: Literal["camera.command_result"] = "camera.command_result"
    version: Literal[1] = 1
    data: CommandResult


class CameraHealth(WireModel):
    reachable: bool = Field(description="The ONVIF service answered the last probe.")
    streaming: bool = Field(description="Frames arrived within the last few seconds.")
    stream_fps: Annotated[float, Field(ge=0)] = 0.0
    reconnects: Count = 0
    preset: Name | None = None
    tour: Name | None = None
    last_error: Annotated[str, StringConstraints(max_length=300)] | None = None


class CameraHealthV1(EventBase):
    """Camera-specific health, sent with the agent's heartbeat."""

    kafka_topic: ClassVar[KafkaTopic] = KafkaTopic.CAMERA_HEALTH
    mqtt_stream: ClassVar[MqttStream] = MqttStream.HEALTH
    device_kind: ClassVar[DeviceKind | None] = DeviceKind.CAMERA

    type: Literal["camera.health"] = "camera.health"
    version: Literal[1] = 1
    data: CameraHealth
