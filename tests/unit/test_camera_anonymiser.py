"""The per-frame anonymiser, checked on pixels: heads blurred (and kept covered while they
move between detections), privacy masks filled where the scene is, at any PTZ position."""

from __future__ import annotations

import numpy as np

from device_configs.camera import Preset
from edge.camera.anonymiser import (
    FrameAnonymiser,
    HeadCover,
    PtzPosition,
    Rect,
    coverage,
    head_of,
    project_masks,
    reproject,
    view_window,
)

W, H = 640, 480


def _textured() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 255, (H, W, 3), dtype=np.uint8)


def _detail(img: np.ndarray) -> float:
    """High-frequency energy: mean absolute difference between neighbouring pixels."""
    g = img.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def _head_rect(box: tuple[float, float, float, float]) -> Rect:
    cx, cy, w, h = head_of(*box)
    return round(cx - w / 2), round(cy - h / 2), round(w), round(h)


def test_a_detected_head_is_blurred_and_the_background_untouched() -> None:
    frame = _textured()
    source = frame.copy()
    anon = FrameAnonymiser([], W, H)
    box = (300.0, 100.0, 60.0, 160.0)
    regions = anon.process(frame, [box])
    x, y, w, h = _head_rect(box)
    assert _detail(frame[y : y + h, x : x + w]) < _detail(source[y : y + h, x : x + w]) / 4
    assert coverage((x, y, w, h), regions) == 1.0
    # below the blurred head (the body) and everywhere else: identical pixels
    (bx, by, bw, bh) = regions[0]
    untouched = np.ones((H, W), bool)
    untouched[by : by + bh, bx : bx + bw] = False
    assert np.array_equal(frame[untouched], source[untouched])
    assert np.array_equal(frame[300:, :], source[300:, :])


def test_a_walking_head_stays_covered_between_detections() -> None:
    """Detections every 3rd frame; the person moves 12 px a frame to the right."""
    cover = HeadCover()
    speed = 12.0  # faster than the margin alone covers: needs the carried velocity
    for f in range(30):
        box = (100.0 + speed * f, 200.0, 30.0, 80.0)
        if f % 3 == 0:
            cover.detected([box])
        regions = cover.next_frame()
        # from the second detection on, the head's velocity is known and carried forward
        if f >= 3:
            assert coverage(_head_rect(box), regions) >= 0.9, f"frame {f} uncovered"


def test_a_missed_detection_keeps_the_head_covered_then_lets_it_go() -> None:
    cover = HeadCover()
    box = (200.0, 150.0, 40.0, 100.0)
    cover.detected([box])
    cover.next_frame()
    cover.detected([])  # the detector missed the person once
    assert coverage(_head_rect(box), cover.next_frame()) == 1.0
    for _ in range(3):
        cover.detected([])
    assert cover.next_frame() == []


def test_two_people_crossing_are_tracked_separately() -> None:
    cover = HeadCover()
    for f in range(12):
        a = (100.0 + 8 * f, 200.0, 30.0, 80.0)
        b = (300.0 - 8 * f, 210.0, 30.0, 80.0)
        if f % 2 == 0:
            cover.detected([a, b])
        regions = cover.next_frame()
        assert coverage(_head_rect(a), regions) >= 0.9
        assert coverage(_head_rect(b), regions) >= 0.9


MASKED = Preset.model_validate(
    {
        "name": "entrance",
        "pan": -0.8,
        "tilt": 0.3,
        "zoom": 0.5,
        "privacy_masks": [[[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6]]],
    }
)


def test_reprojection_round_trips_and_matches_the_view_windows() -> None:
    a, b = PtzPosition(-0.8, 0.3, 0.5), PtzPosition(0.2, -0.1, 0.1)
    pts = [(0.1, 0.2), (0.9, 0.7)]
    back = reproject(reproject(pts, a, b), b, a)
    assert np.allclose(back, pts)
    # the preset's whole view, seen from the wide view, is the preset's window
    x, y, w, h = view_window(a)
    assert np.allclose(reproject([(0, 0), (1, 1)], a, PtzPosition()), [(x, y), (x + w, y + h)])


def test_mask_is_filled_at_its_preset_and_follows_a_move() -> None:
    # at the preset: exactly the configured rectangle
    frame = _textured()
    anon = FrameAnonymiser([MASKED], W, H)
    anon.set_position(PtzPosition.of(MASKED))
    anon.set_position(PtzPosition.of(MASKED))
    anon.process(frame, [])
    assert int(frame[200:280, 260:380].max()) == 0
    assert frame[100:180, 100:200].max() > 0
    # panned half-way to the wide view: the mask is where the scene point now appears
    now = PtzPosition(-0.4, 0.15, 0.25)
    anon.set_position(now)
    anon.set_position(now)
    frame = _textured()
    anon.process(frame, [])
    (x0, y0), (x1, y1) = reproject([(0.4, 0.4), (0.6, 0.6)], PtzPosition.of(MASKED), now)
    inner = frame[round(y0 * H) + 2 : round(y1 * H) - 2, round(x0 * W) + 2 : round(x1 * W) - 2]
    assert inner.size and int(inner.max()) == 0
    assert (x0, y0) != (0.4, 0.4)  # it did move
    black = (frame.max(axis=2) == 0).mean()
    expected = (x1 - x0) * (y1 - y0)
    assert abs(black - expected) < 0.01  # nothing else blacked out


def test_during_a_move_both_last_positions_are_masked() -> None:
    anon = FrameAnonymiser([MASKED], W, H)
    before, after = PtzPosition.of(MASKED), PtzPosition(-0.6, 0.3, 0.5)
    anon.set_position(before)
    anon.set_position(after)
    frame = _textured()
    anon.process(frame, [])
    for pos in (before, after):
        (poly,) = project_masks([MASKED], pos, W, H)
        cx, cy = poly.mean(axis=0).round().astype(int)
        assert int(frame[cy, cx].max()) == 0


def test_a_mask_out_of_view_fills_nothing() -> None:
    anon = FrameAnonymiser([MASKED], W, H)
    far = PtzPosition(0.9, -0.9, 1.0)
    anon.set_position(far)
    anon.set_position(far)
    frame = _textured()
    source = frame.copy()
    anon.process(frame, [])
    assert np.array_equal(frame, source)


def test_zoomed_pets_heads_are_blurred_by_the_agents_pipeline() -> None:
    """The recall benchmark's code on a short stretch of one zoomed view (heads >= 24 px):
    the real detector at 5 detections/s, heads carried in between."""
    from edge.camera.blur_recall import Recall, load_boxes, view_heads
    from edge.camera.detector import PersonDetector
    from tests.support.camera_fixtures import PETS_DIR, require_person_model, require_pets

    video, model = require_pets(), require_person_model()
    boxes = load_boxes(PETS_DIR / "PETS2009-S2L1_tracks_mot.csv")
    heads = view_heads(video, boxes, PtzPosition(1.0, 0.0, 1.0), PersonDetector(model), 2, 24, 60)
    recall = Recall.of(heads, 0.5)
    assert recall.heads >= 50 and recall.recall >= 0.9, recall
