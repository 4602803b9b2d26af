"""Simulated pan/tilt/zoom: a crop window moving over the wide source frame.

A real PTZ head turns; here the picture changes the same way because the window that is
encoded moves (pan/tilt) and shrinks (zoom). Positions follow ONVIF's generic spaces:
pan and tilt in [-1, 1], zoom in [0, 1]; continuous moves integrate a velocity over time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_ZOOM_FACTOR = 3.0  # zoom=1 shows a third of the width, like a modest optical zoom
PAN_SPEED = 0.5  # position units per second at velocity 1
ZOOM_SPEED = 0.4


def _clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, v))


@dataclass(frozen=True)
class Position:
    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0

    def clamped(self) -> Position:
        return Position(_clamp(self.pan, -1, 1), _clamp(self.tilt, -1, 1), _clamp(self.zoom, 0, 1))


def crop_window(pos: Position, width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) in source pixels for a position; the aspect ratio is kept."""
    scale = 1.0 / (1.0 + (MAX_ZOOM_FACTOR - 1.0) * pos.zoom)
    w, h = width * scale, height * scale
    x = (width - w) * (pos.pan + 1) / 2
    y = (height - h) * (1 - pos.tilt) / 2  # tilt up (+) shows the top of the frame
    return round(x), round(y), round(w), round(h)


@dataclass
class PtzHead:
    """Position, presets and an optional continuous move; ``on_change`` gets each new window."""

    presets: dict[str, tuple[str, Position]] = field(default_factory=dict)  # token -> name, pos
    on_change: Callable[[Position], None] = lambda _p: None
    _pos: Position = field(default_factory=Position)
    _velocity: Position | None = None
    _since: float = 0.0
    _until: float = 0.0

    def position(self, now: float | None = None) -> Position:
        now = time.monotonic() if now is None else now
        if self._velocity is None:
            return self._pos
        t = min(now, self._until) - self._since
        v = self._velocity
        return Position(
            self._pos.pan + v.pan * PAN_SPEED * t,
            self._pos.tilt + v.tilt * PAN_SPEED * t,
            self._pos.zoom + v.zoom * ZOOM_SPEED * t,
        ).clamped()

    @property
    def moving(self) -> bool:
        return self._velocity is not None and time.monotonic() < self._until

    def goto(self, pos: Position) -> None:
        self._velocity = None
        self._pos = pos.clamped()
        self.on_change(self._pos)

    def move(self, velocity: Position, timeout_s: float) -> None:
        self._pos = self.position()
        now = time.monotonic()
        self._velocity, self._since, self._until = velocity, now, now + timeout_s

    def stop(self) -> None:
        self._pos = self.position()
        self._velocity = None
        self.on_change(self._pos)

    def tick(self) -> None:
        """Push the current window while moving; settle when a move timed out."""
        if self._velocity is None:
            return
        self.on_change(self.position())
        if time.monotonic() >= self._until:
            self.stop()
