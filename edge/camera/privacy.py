"""Privacy for every still image that leaves the agent: faces blurred, masked areas black.

Haar cascades ship inside opencv-python (``cv2.data.haarcascades``), so nothing is
downloaded. Detection runs only on stills (snapshots, thumbnails): at ~5 fps it is far too
slow for every video frame, and stills are what get stored and shared.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device_configs.camera import Preset
from edge.camera.geometry import Geometry

_CASCADES: list[cv2.CascadeClassifier] = []


def _cascades() -> list[cv2.CascadeClassifier]:
    if not _CASCADES:
        base = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        for name in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"):
            cascade = cv2.CascadeClassifier(str(base / name))
            if cascade.empty():
                raise RuntimeError(f"cannot load {name} from {base}")
            _CASCADES.append(cascade)
    return _CASCADES


def find_faces(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    faces: list[tuple[int, int, int, int]] = []
    for cascade in _cascades():
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=4, minSize=(12, 12))
        faces.extend((int(x), int(y), int(w), int(h)) for x, y, w, h in found)
    return faces


def anonymise(image: np.ndarray, preset: Preset | None) -> np.ndarray:
    """Copy of ``image`` with faces blurred (generously padded) and privacy masks filled."""
    out = image.copy()
    h_img, w_img = out.shape[:2]
    for x, y, w, h in find_faces(out):
        pad = w // 3
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(w_img, x + w + pad), min(h_img, y + h + pad)
        k = max(15, (x1 - x0) // 2 * 2 + 1)  # odd kernel about the face size: unrecognisable
        out[y0:y1, x0:x1] = cv2.GaussianBlur(out[y0:y1, x0:x1], (k, k), 0)
    masks = Geometry.from_preset(preset, w_img, h_img).masks
    if masks:
        cv2.fillPoly(out, list(masks), (0, 0, 0))
    return out


def anonymised_jpeg(jpeg: bytes, preset: Preset | None, quality: int = 85) -> bytes:
    """Decode, anonymise and re-encode a JPEG; raises ValueError for undecodable input."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image")
    ok, buf = cv2.imencode(".jpg", anonymise(image, preset), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
