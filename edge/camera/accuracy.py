"""Score the counter against ground-truth tracks (PETS 2009 S2.L1 format: MOT csv).

The ground truth for any zone or line is derived from the annotated tracks with the same
geometry code the counter uses (foot point = bottom centre of the box), so the figures
measure detection and tracking, not a difference in definitions.

Line counts are scored crossing by crossing: each annotated crossing must be matched by a
counted crossing of the same line and direction within ``LINE_TOLERANCE_S``, and every
counted crossing must match an annotated one. A miss and a phantom therefore add up
instead of cancelling out, as they would in a comparison of totals; and a crossing the
counter reports a moment after the warm-up ends is matched to the annotated one inside it
instead of being scored as a phantom.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2

from device_configs.camera import Preset
from edge.camera.counting import PeopleCounter
from edge.camera.detector import PersonDetector
from edge.camera.geometry import Geometry, LineCrossings, Point

WARMUP_FRAMES = 30  # MOG2 needs a few seconds to learn the background
LINE_TOLERANCE_S = 2.0  # a counted crossing may lag or lead the annotated one by this much

#: (frame, line name, +1 for "in" / -1 for "out")
Crossing = tuple[int, str, int]


@dataclass(frozen=True)
class Accuracy:
    frames: int
    zone_mae: dict[str, float]
    line_truth: dict[str, tuple[int, int]]
    line_counted: dict[str, tuple[int, int]]
    line_missed: int  # annotated crossings no counted crossing matched
    line_phantom: int  # counted crossings that match no annotated one
    fps: float
    mean_true: dict[str, float]  # mean true count per zone: MAE as a share of it

    def mae_share(self, zone: str) -> float:
        return self.zone_mae[zone] / max(self.mean_true[zone], 1e-9)

    @property
    def line_error_pct(self) -> float:
        """Missed plus phantom crossings over all lines, in % of the annotated crossings."""
        truth = sum(i + o for i, o in self.line_truth.values())
        return 100.0 * (self.line_missed + self.line_phantom) / max(truth, 1)


def match_crossings(
    truth: list[Crossing], counted: list[Crossing], tolerance: int, start: int
) -> tuple[int, int]:
    """(missed, phantom), see the module docstring. Annotated crossings before ``start``
    take part in matching but are not scored; counted ones before it are ignored. Greedy in
    time order: each counted crossing matches at most one annotated crossing."""
    pending = sorted(c for c in counted if c[0] >= start)
    used = [False] * len(pending)
    missed = 0
    for frame, line, direction in sorted(truth):
        hit = next(
            (
                k
                for k, (f, ln, d) in enumerate(pending)
                if not used[k] and ln == line and d == direction and abs(f - frame) <= tolerance
            ),
            None,
        )
        if hit is not None:
            used[hit] = True
        elif frame >= start:
            missed += 1
    return missed, used.count(False)


def load_tracks(path: Path, scale_x: float, scale_y: float) -> dict[int, dict[int, Point]]:
    """frame -> track id -> foot point (scaled to the processed resolution)."""
    frames: dict[int, dict[int, Point]] = defaultdict(dict)
    with path.open() as fh:
        for row in csv.DictReader(fh):
            left, top, w, h = (float(row[k]) for k in ("left", "top", "w", "h"))
            foot = ((left + w / 2) * scale_x, (top + h) * scale_y)
            frames[int(row["frame0"])][int(row["id"])] = foot
    return frames


def evaluate(
    video: Path,
    tracks_csv: Path,
    preset: Preset,
    width: int = 640,
    height: int = 480,
    detector: PersonDetector | None = None,
    detect_every: int = 1,
) -> Accuracy:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise FileNotFoundError(video)
    src_w, src_h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    truth = load_tracks(tracks_csv, width / src_w, height / src_h)
    geometry = Geometry.from_preset(preset, width, height)
    counter = PeopleCounter(geometry, width, height, detector, detect_every)
    truth_lines = {ln.name: LineCrossings(ln, margin=0.0) for ln in geometry.lines}
    truth_events: list[Crossing] = []
    counted_events: list[Crossing] = []
    tolerance = round(LINE_TOLERANCE_S * (cap.get(cv2.CAP_PROP_FPS) or 7.0))
    errors: dict[str, float] = {z.name: 0.0 for z in geometry.zones}
    true_sum: dict[str, float] = {z.name: 0.0 for z in geometry.zones}
    scored = 0
    busy = 0.0
    frame_no = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frame = cv2.resize(frame, (width, height))
        started = time.perf_counter()
        result = counter.process(frame)
        busy += time.perf_counter() - started
        people = truth.get(frame_no, {})
        for tid, foot in people.items():
            for crossing in truth_lines.values():
                crossing.update(tid, foot)
        for name, crossing in truth_lines.items():
            truth_events += _events(frame_no, name, crossing.take())
        window = counter.take_lines()
        for name, got in window.items():
            counted_events += _events(frame_no, name, got)
        if frame_no >= WARMUP_FRAMES:
            scored += 1
            for z in geometry.zones:
                true_n = sum(1 for foot in people.values() if z.contains(foot))
                errors[z.name] += abs(result.zones[z.name] - true_n)
                true_sum[z.name] += true_n
        frame_no += 1
    cap.release()
    missed, phantom = match_crossings(truth_events, counted_events, tolerance, WARMUP_FRAMES)
    return Accuracy(
        frames=scored,
        zone_mae={k: v / max(scored, 1) for k, v in errors.items()},
        line_truth=_totals(truth_events, geometry, WARMUP_FRAMES),
        line_counted=_totals(counted_events, geometry, WARMUP_FRAMES),
        line_missed=missed,
        line_phantom=phantom,
        fps=frame_no / busy if busy else 0.0,
        mean_true={k: v / max(scored, 1) for k, v in true_sum.items()},
    )


def _events(frame: int, line: str, counts: tuple[int, int]) -> list[Crossing]:
    return [(frame, line, 1)] * counts[0] + [(frame, line, -1)] * counts[1]


def _totals(events: list[Crossing], geometry: Geometry, start: int) -> dict[str, tuple[int, int]]:
    """(in, out) per line over the scored frames."""
    return {
        ln.name: (
            sum(1 for f, n, d in events if n == ln.name and d > 0 and f >= start),
            sum(1 for f, n, d in events if n == ln.name and d < 0 and f >= start),
        )
        for ln in geometry.lines
    }
