"""People counting: a synthetic scene with exact answers, and accuracy on PETS 2009 S2.L1."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from device_configs.camera import Preset
from edge.camera.accuracy import evaluate
from edge.camera.counting import PeopleCounter
from edge.camera.detector import PersonDetector, tiles
from edge.camera.geometry import Geometry
from tests.support.camera_fixtures import PETS_DIR, require_person_model, require_pets

W, H = 640, 480
PRESET = Preset.model_validate(
    {
        "name": "wide",
        "zones": [
            {"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]},
            {"name": "left", "polygon": [[0, 0.3], [0.5, 0.3], [0.5, 1], [0, 1]]},
        ],
        "lines": [{"name": "middle", "a": [0.5, 0.2], "b": [0.5, 1.0]}],
    }
)


def _synthetic_frames(walkers: list[tuple[int, int, int]], n: int) -> list[np.ndarray]:
    """Textured static background with dark 'people' (x0, y, dx per frame) walking across."""
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.integers(90, 170, (H, W, 3), dtype=np.uint8), (9, 9), 3)
    frames = []
    for i in range(n):
        frame = background.copy()
        if i >= 40:  # let the background model settle first
            for x0, y, dx in walkers:
                x = x0 + dx * (i - 40)
                cv2.rectangle(frame, (x, y), (x + 22, y + 60), (30, 30, 40), -1)
        frames.append(frame)
    return frames


def test_synthetic_walkers_are_counted_exactly() -> None:
    # Two walk left->right, one right->left; their heights differ so blobs never merge.
    walkers = [(40, 120, 6), (10, 300, 5), (600, 210, -6)]
    counter = PeopleCounter(Geometry.from_preset(PRESET, W, H), W, H)
    in_total = out_total = 0
    seen_in_left = 0
    for i, frame in enumerate(_synthetic_frames(walkers, 160)):
        counts = counter.process(frame)
        if i == 45:
            seen_in_left = counts.zones["left"]
        for i_n, o_n in counter.take_lines().values():
            in_total += i_n
            out_total += o_n
    # The line runs top->bottom, so its right-hand side (the 'in' side) is screen-left:
    # walking right->left is 'in', left->right is 'out'.
    assert (in_total, out_total) == (1, 2)
    assert seen_in_left == 2


def test_accuracy_on_pets_2009() -> None:
    video = require_pets()
    result = evaluate(video, PETS_DIR / "PETS2009-S2L1_tracks_mot.csv", PRESET)
    assert result.frames > 700
    # About 5.9 people are in view on average; background subtraction merges groups and
    # loses people who stand still, so we accept an error of at most ~1/4 of that.
    assert result.zone_mae["all"] <= 1.5, result.zone_mae
    assert result.zone_mae["left"] <= 1.0, result.zone_mae
    # Line totals (≈30 true crossings): within 30 % -- a missed or doubled track costs ~3 %.
    assert result.line_error_pct <= 15.0, (result.line_truth, result.line_counted)


def test_tiles_cover_the_frame_with_overlap() -> None:
    windows = tiles(640, 480, 2, 2, 0.25)
    assert len(windows) == 4
    assert {(x, y) for x, y, _, _ in windows} == {(0, 0), (274, 0), (0, 206), (274, 206)}
    assert all(x + w == 640 or x == 0 for x, _, w, _ in windows)
    assert windows[0][2] - windows[1][0] == round(0.25 * windows[0][2])  # the overlap


def test_detector_finds_the_annotated_people_of_a_pets_frame() -> None:
    """Boxes against the ground-truth boxes of frame 100: recall and precision by IoU."""
    video = require_pets()
    detector = PersonDetector(require_person_model())
    cap = cv2.VideoCapture(str(video))
    for _ in range(101):
        ok, frame = cap.read()
        assert ok
    cap.release()
    sx, sy = 640 / frame.shape[1], 480 / frame.shape[0]
    boxes = detector.detect(cv2.resize(frame, (640, 480)))
    truth = []
    with (PETS_DIR / "PETS2009-S2L1_tracks_mot.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["frame0"] == "100":
                left, top, w, h = (float(row[k]) for k in ("left", "top", "w", "h"))
                truth.append((left * sx, top * sy, w * sx, h * sy))

    def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)

    found = [t for t in truth if any(iou((b.x, b.y, b.w, b.h), t) > 0.4 for b in boxes)]
    assert len(found) >= len(truth) - 1, (truth, boxes)  # at most one person missed
    assert len(boxes) <= len(truth) + 2  # a sign post and an unannotated walker, no more


@pytest.mark.slow
def test_detector_counter_accuracy_on_pets_2009() -> None:
    """The detector counter (5 detections/s on the 10 fps clip) against the same truth as the
    motion counter above; figures for both are in .bench/camera.json."""
    video = require_pets()
    detector = PersonDetector(require_person_model())
    result = evaluate(
        video, PETS_DIR / "PETS2009-S2L1_tracks_mot.csv", PRESET, detector=detector, detect_every=2
    )
    assert result.zone_mae["all"] <= 1.0, result.zone_mae
    assert result.mae_share("all") <= 0.2
    assert result.line_error_pct <= 7.0, (result.line_missed, result.line_phantom)
