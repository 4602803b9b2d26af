"""People counting on a CPU: a person detector where its model is installed, else motion.

``detector`` (default where the model is configured): YOLOX-nano boxes
(:mod:`edge.camera.detector`) a few times per second; the tracker carries identities
between detections. ``motion`` (the no-model fallback): background subtraction (MOG2,
shadows removed) finds moving blobs; a blob wider than one upright person is counted as
several. Both feed the same nearest-neighbour tracker on foot points, which line crossing
needs. Every count says which counter made it. HOG runs only on demand (it is ~10x
slower): see :func:`hog_people`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from edge.camera.detector import PersonDetector
from edge.camera.geometry import Geometry, LineCrossings, Point

CounterKind = Literal["detector", "motion"]

PERSON_ASPECT = 0.42  # width / height of one upright pedestrian's box
MIN_AREA_FRAC = 0.0012  # blobs smaller than this share of the frame are noise / far away
MAX_MATCH_FRAC = 0.06  # furthest a foot point may jump between frames (share of diagonal)
MAX_MISSED = 12  # frames a track survives unseen (occlusions) before it is dropped
MIN_HITS = 3  # frames before a track counts: one-frame flickers never do
VELOCITY_SMOOTHING = 0.6  # share of the old velocity kept at each matched detection
LINE_MARGIN_FRAC = 0.012  # hysteresis band around counting lines (share of diagonal)


def detect_every(source_fps: float | None, detect_fps: float) -> int:
    """Analyse every n-th frame so detection runs about ``detect_fps`` times a second."""
    return max(1, round((source_fps or 10.0) / detect_fps))


@dataclass(frozen=True)
class Blob:
    x: int
    y: int
    w: int
    h: int
    people: int

    @property
    def foot(self) -> Point:
        return (self.x + self.w / 2, float(self.y + self.h))


class BlobDetector:
    def __init__(self, width: int, height: int) -> None:
        self.min_area = MIN_AREA_FRAC * width * height
        self.subtractor = cv2.createBackgroundSubtractorMOG2(
            history=300, varThreshold=24, detectShadows=True
        )
        self.kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.motion = 0.0

    def detect(self, frame: np.ndarray) -> list[Blob]:
        fg = self.subtractor.apply(frame)
        _, fg = cv2.threshold(fg, 200, 255, cv2.THRESH_BINARY)  # 127 = shadow, dropped
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self.kernel)
        fg = cv2.dilate(fg, self.kernel, iterations=2)
        self.motion = float(np.count_nonzero(fg)) / fg.size
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        blobs = []
        for c in contours:
            if cv2.contourArea(c) < self.min_area:
                continue
            x, y, w, h = cv2.boundingRect(c)
            people = max(1, round(w / (h * PERSON_ASPECT))) if h > 0 else 1
            blobs.append(Blob(x, y, w, h, min(people, 6)))
        return blobs


@dataclass
class Track:
    id: int
    foot: Point
    people: int
    hits: int = 1
    missed: int = 0
    #: Foot-point motion per analysed frame (smoothed): where to look for the person next.
    velocity: Point = (0.0, 0.0)

    def predicted(self) -> Point:
        steps = self.missed + 1
        return (self.foot[0] + self.velocity[0] * steps, self.foot[1] + self.velocity[1] * steps)

    def moved_to(self, foot: Point, people: int) -> None:
        steps = self.missed + 1
        step = ((foot[0] - self.foot[0]) / steps, (foot[1] - self.foot[1]) / steps)
        if self.hits > 1:  # a new track has no velocity yet: take the first step as it is
            step = (
                VELOCITY_SMOOTHING * self.velocity[0] + (1 - VELOCITY_SMOOTHING) * step[0],
                VELOCITY_SMOOTHING * self.velocity[1] + (1 - VELOCITY_SMOOTHING) * step[1],
            )
        self.velocity, self.foot, self.people = step, foot, people
        self.hits, self.missed = self.hits + 1, 0


@dataclass
class Tracker:
    max_dist: float
    tracks: dict[int, Track] = field(default_factory=dict)
    _next_id: int = 1

    def update(self, blobs: list[Blob]) -> tuple[list[Track], list[int]]:
        """Greedy nearest matching; returns (confirmed live tracks, ids dropped this frame)."""
        predicted = {tid: t.predicted() for tid, t in self.tracks.items()}
        pairs = sorted(
            (float(np.hypot(p[0] - b.foot[0], p[1] - b.foot[1])), tid, i)
            for tid, p in predicted.items()
            for i, b in enumerate(blobs)
        )
        used_t: set[int] = set()
        used_b: set[int] = set()
        for dist, tid, i in pairs:
            if dist > self.max_dist or tid in used_t or i in used_b:
                continue
            self.tracks[tid].moved_to(blobs[i].foot, blobs[i].people)
            used_t.add(tid)
            used_b.add(i)
        dropped = []
        for tid, t in list(self.tracks.items()):
            if tid not in used_t:
                t.missed += 1
                if t.missed > MAX_MISSED:
                    del self.tracks[tid]
                    dropped.append(tid)
        for i, b in enumerate(blobs):
            if i not in used_b:
                self.tracks[self._next_id] = Track(self._next_id, b.foot, b.people)
                self._next_id += 1
        live = [t for t in self.tracks.values() if t.hits >= MIN_HITS and t.missed == 0]
        return live, dropped


@dataclass(frozen=True)
class FrameCounts:
    zones: dict[str, int]
    people: int
    motion: float
    counter: CounterKind = "motion"


class MotionMeter:
    """Share of pixels that changed since the previous frame, on a small grey copy: the
    motion figure of the detector path, which has no background model to ask."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None

    def update(self, frame: np.ndarray) -> float:
        small = cv2.cvtColor(cv2.resize(frame, (160, 120)), cv2.COLOR_BGR2GRAY)
        last, self._last = self._last, small
        if last is None:
            return 0.0
        return float(np.count_nonzero(cv2.absdiff(small, last) > 25)) / small.size


class PeopleCounter:
    """Feed frames; read zone occupancy per frame and line crossings per window.

    With a ``detector``, detection runs on every ``detect_every``-th frame (e.g. 2 at
    10 fps = 5 detections/s) and the tracks stand still in between, so one core serves
    several cameras; without, every frame goes through the motion blobs.
    """

    def __init__(
        self,
        geometry: Geometry,
        width: int,
        height: int,
        detector: PersonDetector | None = None,
        detect_every: int = 1,
    ) -> None:
        diag = float(np.hypot(width, height))
        self.geometry = geometry
        self.person_detector = detector
        self.detect_every = max(1, detect_every)
        self.kind: CounterKind = "detector" if detector is not None else "motion"
        self.detector = BlobDetector(width, height) if detector is None else None
        self.motion_meter = MotionMeter()
        step = self.detect_every if detector is not None else 1
        self.tracker = Tracker(max_dist=MAX_MATCH_FRAC * diag * step)
        self.lines = {
            ln.name: LineCrossings(ln, margin=LINE_MARGIN_FRAC * diag) for ln in geometry.lines
        }
        self._frame = 0
        self._live: list[Track] = []
        #: People (x, y, w, h) found in the last processed frame, None when it was not
        #: analysed (the detector runs every ``detect_every`` frames): the anonymiser's input.
        self.boxes: list[tuple[float, float, float, float]] | None = None

    def process(self, frame: np.ndarray) -> FrameCounts:
        motion = self._observe(frame)
        live = self._live
        zones = {
            z.name: sum(t.people for t in live if z.contains(t.foot)) for z in self.geometry.zones
        }
        return FrameCounts(zones, sum(t.people for t in live), motion, self.kind)

    def _observe(self, frame: np.ndarray) -> float:
        """Update the tracks when this frame is analysed; return the frame's motion."""
        self._frame += 1
        self.boxes = None
        if self.detector is not None:
            blobs = self.detector.detect(frame)
            motion = self.detector.motion
            self.boxes = [(b.x, b.y, b.w, b.h) for b in blobs]
        else:
            motion = self.motion_meter.update(frame)
            if (self._frame - 1) % self.detect_every:
                return motion
            assert self.person_detector is not None
            found = self.person_detector.detect(frame)
            blobs = [Blob(int(b.x), int(b.y), int(b.w), int(b.h), 1) for b in found]
            self.boxes = [(b.x, b.y, b.w, b.h) for b in found]
        live, dropped = self.tracker.update(blobs)
        for crossing in self.lines.values():
            for tid in dropped:
                crossing.forget(tid)
            for t in live:
                crossing.update(t.id, t.foot)
        self._live = live
        return motion

    def take_lines(self) -> dict[str, tuple[int, int]]:
        return {name: c.take() for name, c in self.lines.items()}


_HOG: cv2.HOGDescriptor | None = None


def hog_people(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
    """OpenCV's built-in HOG pedestrian detector: slow, for spot checks and snapshots."""
    global _HOG
    if _HOG is None:
        _HOG = cv2.HOGDescriptor()
        _HOG.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))
    rects, _ = _HOG.detectMultiScale(frame, winStride=(8, 8), padding=(8, 8), scale=1.05)
    return [tuple(int(v) for v in r) for r in rects]  # type: ignore[misc]
