"""Camera config: how to reach the camera, what to count per preset, privacy masks, tours.

Geometry is in normalised image coordinates (0..1, origin top-left) so a config stays valid
when the stream resolution changes. Credentials are never written in the YAML: the config
names the environment variables that hold them.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Coord = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Coord, Coord]
Narration = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(_Config):
    """Names of environment variables holding the ONVIF user and password."""

    username_env: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
    password_env: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]

    def resolve(self, env: dict[str, str] | None = None) -> tuple[str, str]:
        """Read the credentials now; a clear error names the missing variable."""
        source = os.environ if env is None else env
        missing = [v for v in (self.username_env, self.password_env) if v not in source]
        if missing:
            raise LookupError(f"camera credentials not set: {', '.join(missing)}")
        return source[self.username_env], source[self.password_env]


class Onvif(_Config):
    host: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    port: Annotated[int, Field(gt=0, lt=65536)] = 80
    credentials: Credentials


class Zone(_Config):
    name: Name
    polygon: Annotated[list[Point], Field(min_length=3)]


class Line(_Config):
    """A counting line from ``a`` to ``b``; 'in' is crossing from its left to its right side.

    "Left" is as seen walking from a to b in image coordinates (y grows downwards).
    """

    name: Name
    a: Point
    b: Point

    @model_validator(mode="after")
    def _not_degenerate(self) -> Line:
        if self.a == self.b:
            raise ValueError("line endpoints a and b must differ")
        return self


class Calibration(_Config):
    """count_true ~ a*count + b for one preset, written by ``tourpulse camera calibrate``.

    Kept with the preset because the counter's bias depends on the view (distance, angle,
    occlusion). The fit's statistics are stored, not just a and b, so the agent can give every
    count an ordinary-least-squares prediction interval without refitting:
    ``t * s * sqrt(1 + 1/n + (x - x_mean)^2 / sxx)`` around ``a*x + b``.
    """

    target: Name = Field(
        default="people", description="What was hand-counted: 'people' (whole frame) or a zone."
    )
    counter: Literal["detector", "motion"] = Field(
        default="motion",
        description="The counter the fit was made for: a fit applies only to counts it made.",
    )
    a: float
    b: float
    n: Annotated[int, Field(ge=3)] = Field(description="Labelled frames in the fit.")
    x_mean: float = Field(description="Mean raw count over the labelled frames.")
    sxx: Annotated[float, Field(gt=0)] = Field(description="Sum of squared raw-count deviations.")
    residual_sd: Annotated[float, Field(ge=0)]
    level: Annotated[float, Field(gt=0, lt=1)] = 0.9
    t: Annotated[float, Field(gt=0)] = Field(description="Student-t quantile for level, n-2 df.")


class Preset(_Config):
    name: Name
    pan: Annotated[float, Field(ge=-1, le=1)] = 0.0
    tilt: Annotated[float, Field(ge=-1, le=1)] = 0.0
    zoom: Annotated[float, Field(ge=0, le=1)] = 0.0
    zones: list[Zone] = Field(default_factory=list)
    lines: list[Line] = Field(default_factory=list)
    privacy_masks: list[Annotated[list[Point], Field(min_length=3)]] = Field(
        default_factory=list, description="Polygons blacked out in every still image."
    )
    calibration: Calibration | None = Field(
        default=None, description="Fit of hand counts on this preset's counts (see Calibration)."
    )

    @model_validator(mode="after")
    def _calibrated_target_exists(self) -> Preset:
        target = self.calibration.target if self.calibration else "people"
        if target != "people" and target not in {z.name for z in self.zones}:
            raise ValueError(f"calibration target {target!r} is neither 'people' nor a zone")
        return self


class PtzLimits(_Config):
    """Where public viewers may steer the camera with continuous moves (presets are always
    allowed, operators are not limited). Without it a public viewer can only pick presets.

    The speeds are the camera's travel per second at velocity 1 (ONVIF does not report
    them): the API uses them to cut a move short so it stops at the limit.
    """

    pan: tuple[Annotated[float, Field(ge=-1, le=1)], Annotated[float, Field(ge=-1, le=1)]]
    tilt: tuple[Annotated[float, Field(ge=-1, le=1)], Annotated[float, Field(ge=-1, le=1)]]
    zoom: tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]]
    pan_tilt_speed_per_s: Annotated[float, Field(gt=0, le=10)] = 0.5
    zoom_speed_per_s: Annotated[float, Field(gt=0, le=10)] = 0.4

    @model_validator(mode="after")
    def _ordered(self) -> PtzLimits:
        for axis in ("pan", "tilt", "zoom"):
            lo, hi = getattr(self, axis)
            if lo > hi:
                raise ValueError(f"public_ptz {axis}: minimum {lo} is above maximum {hi}")
        return self


class TourStep(_Config):
    preset: Name
    dwell_s: Annotated[float, Field(ge=3, le=3600)]
    narration_vi: Narration
    narration_en: Narration


class Tour(_Config):
    name: Name
    steps: Annotated[list[TourStep], Field(min_length=1)]
    loop: bool = True


class CameraSetup(_Config):
    """Everything the agent and the API need about one networked camera."""

    onvif: Onvif
    anonymised_stream: (
        Annotated[str, StringConstraints(pattern=r"^rtsp://[^/\s]+:[0-9]{1,5}/[A-Za-z0-9_/-]+$")]
        | None
    ) = Field(
        default=None,
        description="rtsp://host:port/path where the camera's edge agent serves its anonymised "
        "video (heads blurred, privacy masks filled); the only video the API relays. The "
        "camera's own stream is never configured centrally. None: no live video.",
    )
    presets: list[Preset] = Field(default_factory=list)
    tours: list[Tour] = Field(default_factory=list)
    public_ptz: PtzLimits | None = Field(
        default=None, description="Pan/tilt/zoom box for public continuous moves (see PtzLimits)."
    )

    @model_validator(mode="after")
    def _check_names(self) -> CameraSetup:
        presets = [p.name for p in self.presets]
        if len(set(presets)) != len(presets):
            raise ValueError("duplicate preset name")
        for tour in self.tours:
            for step in tour.steps:
                if step.preset not in presets:
                    raise ValueError(f"tour {tour.name!r} uses unknown preset {step.preset!r}")
        return self

    def preset(self, name: str) -> Preset:
        for p in self.presets:
            if p.name == name:
                return p
        raise KeyError(name)

    def tour(self, name: str) -> Tour:
        for t in self.tours:
            if t.name == name:
                return t
        raise KeyError(name)
