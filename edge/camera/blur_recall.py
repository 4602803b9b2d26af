"""How many annotated heads the anonymiser covers: ``face_blur_recall`` on PETS 2009 S2.L1.

Ground truth: the clip's annotated person boxes (MOT csv). A head is derived from a box by
body proportions, independently of what the anonymiser blurs: the top seventh of the box
(a head is ~1/7.5 of a standing adult), 45 % of the box width (boxes include swinging arms),
centred. A head counts as blurred when >= 90 % of its area lies inside the regions the
anonymiser blurred in that frame (:func:`edge.camera.anonymiser.coverage`).

The wide view's heads are 8-22 px tall in 640x480, under the 24 px at which a face starts
to be recognisable, so the recall that matters is measured where a PTZ camera makes faces
big: zoomed views (crop windows of the simulator's PTZ model, :func:`view_window`) across
the scene, through the agent's exact pipeline (counter with the detector at its configured
rate, heads carried between detections), only heads >= ``min_head_px`` tall and wholly in
view. The wide view's recall over heads of every size is reported too.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.camera.anonymiser import FrameAnonymiser, PtzPosition, Rect, coverage, view_window
from edge.camera.counting import PeopleCounter
from edge.camera.detector import PersonDetector
from edge.camera.geometry import Geometry

Box = tuple[float, float, float, float]
W, H = 640, 480
COVERED = 0.9


def load_boxes(path: Path) -> dict[int, list[Box]]:
    """frame index -> annotated person boxes (x, y, w, h) in source pixels."""
    frames: dict[int, list[Box]] = defaultdict(list)
    with path.open() as fh:
        for row in csv.DictReader(fh):
            box = tuple(float(row[k]) for k in ("left", "top", "w", "h"))
            frames[int(row["frame0"])].append(box)  # type: ignore[arg-type]
    return frames


def gt_head(box: Box) -> Rect:
    x, y, w, h = box
    hh = h / 7
    hw = max(0.45 * w, 0.8 * hh)
    return round(x + w / 2 - hw / 2), round(y), round(hw), round(hh)


def to_view(box: Box, window: tuple[float, float, float, float], src: tuple[int, int]) -> Box:
    """A source-pixel box in the W x H picture of the view whose window (shares of the
    wide view) is ``window``."""
    wx, wy, ww, wh = window
    sx, sy = W / (ww * src[0]), H / (wh * src[1])
    x, y, w, h = box
    return (x - wx * src[0]) * sx, (y - wy * src[1]) * sy, w * sx, h * sy


def view_frames(video: Path, pos: PtzPosition) -> Iterator[tuple[int, np.ndarray, tuple[int, int]]]:
    """(index, W x H picture of the view, source size) for every frame of the clip."""
    cap = cv2.VideoCapture(str(video))
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            sh, sw = frame.shape[:2]
            wx, wy, ww, wh = view_window(pos)
            x0, y0 = round(wx * sw), round(wy * sh)
            crop = frame[y0 : y0 + round(wh * sh), x0 : x0 + round(ww * sw)]
            yield index, cv2.resize(crop, (W, H)), (sw, sh)
            index += 1
    finally:
        cap.release()


def visible_share(box: Box) -> float:
    """Share of a person's box inside the W x H picture."""
    x, y, w, h = box
    ix = max(0.0, min(x + w, W) - max(x, 0.0))
    iy = max(0.0, min(y + h, H) - max(y, 0.0))
    return ix * iy / max(w * h, 1e-9)


@dataclass
class Recall:
    heads: int = 0
    blurred: int = 0

    @property
    def recall(self) -> float:
        return self.blurred / self.heads if self.heads else float("nan")

    def add(self, other: Recall) -> None:
        self.heads += other.heads
        self.blurred += other.blurred

    @classmethod
    def of(cls, heads: list[tuple[float, bool]], min_visible: float = 0.0) -> Recall:
        """From :func:`view_heads`' records, people at least ``min_visible`` in view."""
        kept = [blurred for visible, blurred in heads if visible >= min_visible]
        return cls(len(kept), sum(kept))


def view_heads(
    video: Path,
    boxes: dict[int, list[Box]],
    pos: PtzPosition,
    detector: PersonDetector,
    detect_every: int,
    min_head_px: float,
    max_frames: int | None = None,
) -> list[tuple[float, bool]]:
    """Run the agent's pipeline over one view of the clip; for every annotated head at least
    ``min_head_px`` tall and wholly in view: (share of the person in view, blurred?)."""
    counter = PeopleCounter(Geometry((), (), ()), W, H, detector, detect_every)
    anonymiser = FrameAnonymiser([], W, H)
    window = view_window(pos)
    out: list[tuple[float, bool]] = []
    for index, picture, src in view_frames(video, pos):
        if max_frames is not None and index >= max_frames:
            break
        counter.process(picture)
        regions = anonymiser.process(picture, counter.boxes)
        for box in boxes.get(index, []):
            person = to_view(box, window, src)
            x, y, w, h = gt_head(person)
            if h < min_head_px or x < 0 or y < 0 or x + w > W or y + h > H:
                continue
            blurred = coverage((x, y, w, h), regions) >= COVERED
            out.append((visible_share(person), blurred))
    return out


#: Zoomed views across the scene (zoom 1 = a third of the width), as a touring PTZ shows it.
ZOOMED_VIEWS = tuple(
    PtzPosition(pan, tilt, 1.0) for pan in (-1.0, 0.0, 1.0) for tilt in (-1.0, 0.0, 1.0)
)
