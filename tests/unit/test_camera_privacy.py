"""Privacy of stills: masks are blacked out, faces blurred, garbage input refused clearly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device_configs.camera import Preset
from edge.camera import privacy


def _textured(h: int = 480, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_privacy_mask_is_black_and_the_rest_untouched() -> None:
    preset = Preset.model_validate(
        {"name": "p", "privacy_masks": [[[0.0, 0.0], [0.25, 0.0], [0.25, 0.25], [0.0, 0.25]]]}
    )
    image = _textured()
    out = privacy.anonymise(image, preset)
    assert int(out[10:110, 10:150].max()) == 0
    assert np.array_equal(out[300:, 300:], image[300:, 300:])


def test_detected_faces_are_blurred(monkeypatch: pytest.MonkeyPatch) -> None:
    # No face photo ships with the repo, so the detector's answer is fixed here; the
    # cascades themselves are exercised by test_cascades_load_and_run.
    monkeypatch.setattr(privacy, "find_faces", lambda _img: [(200, 150, 60, 60)])
    image = _textured()
    out = privacy.anonymise(image, None)
    face_before = image[150:210, 200:260].astype(np.float32)
    face_after = out[150:210, 200:260].astype(np.float32)
    assert face_after.std() < face_before.std() / 3  # detail gone
    assert np.array_equal(out[400:, 500:], image[400:, 500:])


def test_cascades_load_and_run() -> None:
    assert privacy.find_faces(np.full((240, 320, 3), 128, np.uint8)) == []


def test_jpeg_round_trip_and_bad_input() -> None:
    ok, jpeg = cv2.imencode(".jpg", _textured())
    assert ok
    out = privacy.anonymised_jpeg(jpeg.tobytes(), None)
    assert out[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match="not a decodable image"):
        privacy.anonymised_jpeg(b"definitely not a jpeg", None)
