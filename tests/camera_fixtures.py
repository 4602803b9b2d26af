"""Helpers shared by the camera tests (imported, not collected)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera_sim.ptz import Position
from edge.camera_sim.video import SHARED_PETS_DIR

PETS_DIR = SHARED_PETS_DIR
PETS_VIDEO = PETS_DIR / "vtest.avi"
USER, PASSWORD = "admin", "tourpulse-test"
PRESETS = {
    "wide": Position(),
    "entrance": Position(-0.8, 0.3, 0.5),
    "square": Position(0.8, 0.3, 0.5),
}
REPO = Path(__file__).resolve().parents[1]
LEGACY_PYTHON = Path(
    os.environ.get(
        "TP_ONVIF_LEGACY_PYTHON", REPO / ".tourpulse" / "onvif-legacy" / "bin" / "python"
    )
)


def require_pets() -> Path:
    if not PETS_VIDEO.is_file():
        pytest.skip(f"PETS 2009 clip not present at {PETS_VIDEO}")
    return PETS_VIDEO


def grab_rtsp_frame(url: str, skip: int = 5) -> np.ndarray:
    """Decode a frame from an RTSP stream (after a few, so the picture is settled)."""
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    try:
        frame = None
        for _ in range(skip + 1):
            ok, frame = cap.read()
            assert ok, f"no frame from {url}"
        assert frame is not None
        return frame
    finally:
        cap.release()
