"""Counting geometry in pixels: zones (polygons) and directed lines from normalised config.

Kept free of OpenCV state so the same functions score the tracker and the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device_configs.camera import Preset

Point = tuple[float, float]


@dataclass(frozen=True)
class PixelZone:
    name: str
    polygon: np.ndarray  # float32 (N, 1, 2), what cv2.pointPolygonTest wants

    def contains(self, p: Point) -> bool:
        return cv2.pointPolygonTest(self.polygon, (float(p[0]), float(p[1])), False) >= 0


@dataclass(frozen=True)
class PixelLine:
    """Directed segment a->b; 'in' is crossing from its left (side -1) to its right (+1)."""

    name: str
    a: Point
    b: Point

    def side(self, p: Point) -> float:
        """Signed distance of ``p`` from the infinite line (px); > 0 is the 'in' side."""
        (ax, ay), (bx, by) = self.a, self.b
        cross = (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)
        return float(cross / max(np.hypot(bx - ax, by - ay), 1e-9))

    def within_span(self, p: Point, q: Point) -> bool:
        """Does the move p->q pass the line between its endpoints (not beyond them)?"""
        (ax, ay), (bx, by) = self.a, self.b
        mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
        dx, dy = bx - ax, by - ay
        t = ((mx - ax) * dx + (my - ay) * dy) / max(dx * dx + dy * dy, 1e-9)
        return -0.05 <= t <= 1.05


@dataclass(frozen=True)
class Geometry:
    zones: tuple[PixelZone, ...]
    lines: tuple[PixelLine, ...]
    masks: tuple[np.ndarray, ...]  # int32 polygons for cv2.fillPoly

    @classmethod
    def from_preset(cls, preset: Preset | None, width: int, height: int) -> Geometry:
        if preset is None:
            return cls((), (), ())

        def px(p: tuple[float, float]) -> Point:
            return (p[0] * width, p[1] * height)

        zones = tuple(
            PixelZone(z.name, np.array([px(p) for p in z.polygon], np.float32).reshape(-1, 1, 2))
            for z in preset.zones
        )
        lines = tuple(PixelLine(ln.name, px(ln.a), px(ln.b)) for ln in preset.lines)
        masks = tuple(
            np.array([px(p) for p in m], np.float32).round().astype(np.int32)
            for m in preset.privacy_masks
        )
        return cls(zones, lines, masks)


class LineCrossings:
    """Counts crossings of one line by many tracks, with hysteresis against jitter.

    A track's side is only updated once it is ``margin`` pixels clear of the line, so a
    person standing on the line, or a wobbling box, is not counted again and again.
    """

    def __init__(self, line: PixelLine, margin: float) -> None:
        self.line, self.margin = line, margin
        self.in_count = 0
        self.out_count = 0
        self._side: dict[int, tuple[int, Point]] = {}  # track id -> (confirmed side, where)

    def update(self, track_id: int, p: Point) -> None:
        d = self.line.side(p)
        if abs(d) < self.margin:
            return
        side = 1 if d > 0 else -1
        prev = self._side.get(track_id)
        self._side[track_id] = (side, p)
        if prev is None or prev[0] == side or not self.line.within_span(prev[1], p):
            return
        if side > 0:
            self.in_count += 1
        else:
            self.out_count += 1

    def forget(self, track_id: int) -> None:
        self._side.pop(track_id, None)

    def take(self) -> tuple[int, int]:
        """Counts since the last call (per-second windows)."""
        counts = (self.in_count, self.out_count)
        self.in_count = self.out_count = 0
        return counts
