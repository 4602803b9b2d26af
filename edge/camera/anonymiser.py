"""Anonymise every video frame before it leaves the camera's site: heads blurred, masks filled.

Why heads from person boxes and not a face detector: the people detector already runs for
counting, finds people from behind and far away (where no face detector fires: PETS heads
are 8-22 px tall) and costs nothing extra. OpenCV's Haar cascades (shipped in
opencv-python) ran at ~5 fps on a frame, too slow for every frame of every camera, and only
see frontal and profile faces; their added recall on video was not measured.

Why boxes are carried forward: the detector runs a few times per second, the video at
10 fps or more. A head seen at detection ``k`` is moved along its own velocity (from the
previous detection of the same person) on every frame until the next detection, and the
blurred area grows with the time since the person was last seen, so a walking head stays
covered. A person the detector misses once stays covered for :data:`KEEP_MISSES` more
detections.

Privacy masks follow the PTZ head: every preset's masks are stored in that preset's view;
:func:`project_masks` maps them through the scene to the camera's *current* pan/tilt/zoom
(read over ONVIF), so a mask stays on its window or doorway during any move, not only at
presets. The view model is the one the simulator implements (:mod:`edge.camera_sim.ptz`):
zoom ``z`` shows ``1 / (1 + (MAX_ZOOM - 1) z)`` of the wide view, pan and tilt slide that
window across it. A real dome's spherical projection is close to it over a preset's range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from device_configs.camera import Preset

Rect = tuple[int, int, int, int]  # x, y, w, h in frame pixels
#: Head height as a share of a standing person's box (a head is ~1/7.5 of the body; boxes
#: are loose and people bend, so a quarter of the box is taken).
HEAD_SHARE = 0.25
#: Head height as a share of the box width, for boxes the frame edge cut short.
HEAD_FROM_WIDTH = 0.6
#: Head width as a share of the box width (never narrower than the head is tall).
HEAD_WIDTH_SHARE = 0.8
#: Extra margin around a head, as a share of its height, on every side.
MARGIN = 0.35
#: More margin per frame since the person was last detected (share of head height).
MARGIN_PER_FRAME = 0.25
#: Detections a person may be missed by the detector and still be covered.
KEEP_MISSES = 2
#: The largest head step between two detections that still counts as the same person
#: (multiples of the head height).
MATCH_HEADS = 2.5
#: Blurred regions are shrunk to cells of this many pixels and smoothly enlarged: no detail
#: under ~a head's size survives, and it costs less than a Gaussian of that size.
BLUR_CELL = 8
#: The simulator's (and a modest PTZ's) optical zoom: zoom 1 shows a third of the width.
MAX_ZOOM = 3.0
MASK_COLOUR = (0, 0, 0)


def head_of(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """Head (centre x, centre y, width, height) from a person's box. A box cut by the frame
    edge (a zoomed view showing only the upper body) is short for its width: the head is
    then sized from the width (HEAD_FROM_WIDTH), not from the truncated height."""
    hh = max(h * HEAD_SHARE, w * HEAD_FROM_WIDTH)
    hw = max(w * HEAD_WIDTH_SHARE, hh)
    return x + w / 2, y + hh / 2, hw, hh


@dataclass
class _Head:
    cx: float
    cy: float
    w: float
    h: float
    vx: float = 0.0  # pixels per frame
    vy: float = 0.0
    seen_at: int = 0  # frame index of the last detection
    misses: int = 0


@dataclass
class HeadCover:
    """Head regions for every frame from person boxes given at detection frames only."""

    margin: float = MARGIN
    margin_per_frame: float = MARGIN_PER_FRAME
    heads: list[_Head] = field(default_factory=list)
    frame: int = 0

    def detected(self, boxes: Iterable[tuple[float, float, float, float]]) -> None:
        """Person boxes (x, y, w, h) found in the current frame."""
        found = [head_of(*b) for b in boxes]
        old, matched = list(self.heads), set[int]()
        heads: list[_Head] = []
        pairs = sorted(
            (float(np.hypot(o.cx + o.vx * (self.frame - o.seen_at) - cx, o.cy - cy)), i, j)
            for i, o in enumerate(old)
            for j, (cx, cy, _w, _h) in enumerate(found)
        )
        used: set[int] = set()
        for dist, i, j in pairs:
            cx, cy, w, h = found[j]
            if i in matched or j in used or dist > MATCH_HEADS * max(h, old[i].h):
                continue
            o = old[i]
            steps = max(1, self.frame - o.seen_at)
            heads.append(_Head(cx, cy, w, h, (cx - o.cx) / steps, (cy - o.cy) / steps, self.frame))
            matched.add(i)
            used.add(j)
        heads += [_Head(*found[j], seen_at=self.frame) for j in range(len(found)) if j not in used]
        for i, o in enumerate(old):
            if i not in matched and o.misses < KEEP_MISSES:
                o.misses += 1
                heads.append(o)
        self.heads = heads

    def next_frame(self) -> list[Rect]:
        """Advance one frame; the regions to blur in it."""
        regions = self.regions()
        self.frame += 1
        return regions

    def regions(self) -> list[Rect]:
        out = []
        for hd in self.heads:
            age = self.frame - hd.seen_at
            pad = hd.h * (self.margin + self.margin_per_frame * age)
            cx, cy = hd.cx + hd.vx * age, hd.cy + hd.vy * age
            x0, y0 = cx - hd.w / 2 - pad, cy - hd.h / 2 - pad
            out.append((round(x0), round(y0), round(hd.w + 2 * pad), round(hd.h + 2 * pad)))
        return out


def clip(rect: Rect, width: int, height: int) -> Rect | None:
    x, y, w, h = rect
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def blur_regions(frame: np.ndarray, regions: Iterable[Rect]) -> None:
    """Blur each region in place: shrink to BLUR_CELL-pixel cells, enlarge smoothly."""
    fh, fw = frame.shape[:2]
    for rect in regions:
        r = clip(rect, fw, fh)
        if r is None:
            continue
        x, y, w, h = r
        roi = frame[y : y + h, x : x + w]
        small = cv2.resize(
            roi, (max(1, w // BLUR_CELL), max(1, h // BLUR_CELL)), interpolation=cv2.INTER_AREA
        )
        frame[y : y + h, x : x + w] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# ----- privacy masks that follow the PTZ head ----------------------------------------------
@dataclass(frozen=True)
class PtzPosition:
    """ONVIF generic spaces: pan, tilt in [-1, 1], zoom in [0, 1]."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0

    @classmethod
    def of(cls, preset: Preset) -> PtzPosition:
        return cls(preset.pan, preset.tilt, preset.zoom)


def view_window(pos: PtzPosition) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the view at ``pos`` inside the wide view, as shares of it."""
    scale = 1.0 / (1.0 + (MAX_ZOOM - 1.0) * min(1.0, max(0.0, pos.zoom)))
    x = (1 - scale) * (min(1.0, max(-1.0, pos.pan)) + 1) / 2
    y = (1 - scale) * (1 - min(1.0, max(-1.0, pos.tilt))) / 2
    return x, y, scale, scale


def reproject(
    points: Sequence[tuple[float, float]], seen_at: PtzPosition, now: PtzPosition
) -> list[tuple[float, float]]:
    """Normalised points of the view at ``seen_at`` in the view at ``now`` (may fall outside)."""
    ax, ay, aw, ah = view_window(seen_at)
    bx, by, bw, bh = view_window(now)
    return [((ax + px * aw - bx) / bw, (ay + py * ah - by) / bh) for px, py in points]


def project_masks(
    presets: Iterable[Preset], now: PtzPosition, width: int, height: int
) -> list[np.ndarray]:
    """Every preset's privacy masks as int32 pixel polygons of the current view."""
    out = []
    for preset in presets:
        seen_at = PtzPosition.of(preset)
        for mask in preset.privacy_masks:
            pts = reproject(mask, seen_at, now)
            poly = np.array([(x * width, y * height) for x, y in pts], np.float64)
            # fillPoly clips to the frame; keep coordinates in a sane int32 range
            out.append(np.clip(poly, -1e5, 1e5).round().astype(np.int32))
    return out


def fill_masks(frame: np.ndarray, masks: Sequence[np.ndarray]) -> None:
    if masks:
        cv2.fillPoly(frame, list(masks), MASK_COLOUR)


def anonymise_frame(frame: np.ndarray, heads: Iterable[Rect], masks: Sequence[np.ndarray]) -> None:
    """Blur ``heads`` and fill ``masks`` in place (masks last: they win)."""
    blur_regions(frame, heads)
    fill_masks(frame, masks)


def coverage(rect: Rect, regions: Iterable[Rect]) -> float:
    """Share of ``rect``'s area inside the union of ``regions`` (for recall scoring)."""
    x, y, w, h = rect
    if w <= 0 or h <= 0:
        return 0.0
    covered = np.zeros((h, w), bool)
    for rx, ry, rw, rh in regions:
        x0, y0 = max(rx - x, 0), max(ry - y, 0)
        x1, y1 = min(rx + rw - x, w), min(ry + rh - y, h)
        if x1 > x0 and y1 > y0:
            covered[y0:y1, x0:x1] = True
    return float(covered.mean())


class FrameAnonymiser:
    """Per-camera state: heads carried between detections, masks at the current position.

    ``set_position`` may be called from another thread (the ONVIF poller); the masks of the
    last two positions are both filled, so a mask stays covered while the picture catches
    up with the head's reported position (the video lags the ONVIF answer by a frame or
    more)."""

    def __init__(self, presets: Sequence[Preset], width: int, height: int) -> None:
        self.presets, self.width, self.height = list(presets), width, height
        self.cover = HeadCover()
        self._positions = (PtzPosition(), PtzPosition())
        self._masks = self._project(self._positions)

    def _project(self, positions: tuple[PtzPosition, PtzPosition]) -> list[np.ndarray]:
        first = project_masks(self.presets, positions[0], self.width, self.height)
        if positions[1] == positions[0]:
            return first
        return first + project_masks(self.presets, positions[1], self.width, self.height)

    def set_position(self, pos: PtzPosition) -> None:
        positions = (self._positions[1], pos)
        if positions != self._positions:
            self._masks, self._positions = self._project(positions), positions

    def process(
        self, frame: np.ndarray, boxes: Iterable[tuple[float, float, float, float]] | None
    ) -> list[Rect]:
        """Anonymise ``frame`` in place; ``boxes`` are the persons detected in it, or None
        when the detector did not run on this frame. Returns the blurred regions."""
        if boxes is not None:
            self.cover.detected(boxes)
        regions = self.cover.next_frame()
        anonymise_frame(frame, regions, self._masks)
        return regions
