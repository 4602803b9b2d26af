"""Score the counter against ground-truth tracks (PETS 2009 S2.L1 format: MOT csv).

The ground truth for any zone or line is derived from the annotated tracks with the same
geometry code the counter uses (foot point = bottom centre of the box), so the figures
measure detection and tracking, not a difference in definitions.
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


@dataclass(frozen=True)
class Accuracy:
    frames: int
    zone_mae: dict[str, float]
    line_truth: dict[str, tuple[int, int]]
    line_counted: dict[str, tuple[int, int]]
    fps: float
    mean_true: dict[str, float]  # mean true count per zone: MAE as a share of it

    def mae_share(self, zone: str) -> float:
        return self.zone_mae[zone] / max(self.mean_true[zone], 1e-9)

    @property
    def line_error_pct(self) -> float:
        """Absolute error of in+out totals over all lines, in % of the true total."""
        truth = sum(i + o for i, o in self.line_truth.values())
        err = sum(
            abs(self.line_counted[n][0] - i) + abs(self.line_counted[n][1] - o)
            for n, (i, o) in self.line_truth.items()
        )
        return 100.0 * err / max(truth, 1)


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
    errors: dict[str, float] = {z.name: 0.0 for z in geometry.zones}
    true_sum: dict[str, float] = {z.name: 0.0 for z in geometry.zones}
    scored = 0
    counted: dict[str, list[int]] = {ln.name: [0, 0] for ln in geometry.lines}
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
        window = counter.take_lines()
        if frame_no >= WARMUP_FRAMES:
            scored += 1
            for z in geometry.zones:
                true_n = sum(1 for foot in people.values() if z.contains(foot))
                errors[z.name] += abs(result.zones[z.name] - true_n)
                true_sum[z.name] += true_n
            for name, (i, o) in window.items():
                counted[name][0] += i
                counted[name][1] += o
        else:
            for crossing in truth_lines.values():
                crossing.take()  # crossings during warm-up are not scored on either side
        frame_no += 1
    cap.release()
    return Accuracy(
        frames=scored,
        zone_mae={k: v / max(scored, 1) for k, v in errors.items()},
        line_truth={n: (c.in_count, c.out_count) for n, c in truth_lines.items()},
        line_counted={n: (c[0], c[1]) for n, c in counted.items()},
        fps=frame_no / busy if busy else 0.0,
        mean_true={k: v / max(scored, 1) for k, v in true_sum.items()},
    )
