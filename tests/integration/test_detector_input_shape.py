"""The person detector's non-square input: same people found, fixed-shape models still run.

A 4:3 frame or tile letterboxed into 416x320 instead of 416x416 saves 23 % of the
network's work; these tests hold it to finding what the square input finds on PETS 2009
frames, and check that a model whose shape cannot change falls back to the square input
instead of failing at its first frame.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera.detector import Box, PersonDetector, canvas_shape
from tests.support.camera_fixtures import require_person_model, require_pets


def test_canvas_follows_the_image_shape() -> None:
    assert canvas_shape(640, 480, True)[:2] == (320, 416)  # 416x312 rounded up to 32
    assert canvas_shape(366, 274, True)[:2] == (320, 416)  # a 2x2 tile at 25 % overlap
    assert canvas_shape(300, 400, True)[:2] == (416, 320)  # portrait
    assert canvas_shape(640, 480, False)[:2] == (416, 416)


def _frames(count: int, every: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(require_pets()))
    frames: list[np.ndarray] = []
    index = 0
    while len(frames) < count:
        ok, frame = cap.read()
        assert ok
        if index % every == 0:
            frames.append(cv2.resize(frame, (640, 480)))
        index += 1
    cap.release()
    return frames


def _square_detector(model: Path, monkeypatch: pytest.MonkeyPatch) -> PersonDetector:
    """The model as shipped, square input (as on a box without the onnx package)."""
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
        return PersonDetector(model)


def _matched(a: list[Box], b: list[Box], tolerance: float) -> bool:
    key = lambda box: (box.x, box.y)  # noqa: E731
    return len(a) == len(b) and all(
        max(abs(p.x - q.x), abs(p.y - q.y), abs(p.w - q.w), abs(p.h - q.h)) <= tolerance
        for p, q in zip(sorted(a, key=key), sorted(b, key=key), strict=True)
    )


def test_free_shape_finds_the_people_the_square_input_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = require_person_model()
    free = PersonDetector(model)
    square = _square_detector(model, monkeypatch)
    assert free.free_shape and not square.free_shape
    frames = _frames(30, 7)
    same = sum(_matched(free.detect(f), square.detect(f), 8.0) for f in frames)
    assert same >= len(frames) - 2, f"only {same} of {len(frames)} frames agree"


def test_a_model_with_fixed_shapes_runs_square(tmp_path: Path) -> None:
    """The head's reshapes pinned to the 416x416 grid: a 416x320 input cannot run."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(require_person_model()))
    rows = iter((52 * 52, 26 * 26, 13 * 13))
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        if value.tolist() == [1, 85, -1]:
            init.CopyFrom(
                numpy_helper.from_array(np.array([1, 85, next(rows)], np.int64), init.name)
            )
    pinned = tmp_path / "pinned.onnx"
    onnx.save(model, str(pinned))
    detector = PersonDetector(pinned)
    assert not detector.free_shape
    (frame,) = _frames(1, 1)
    assert len(detector.detect(frame)) >= 3  # PETS frame 0 has several walkers
