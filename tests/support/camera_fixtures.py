"""Helpers shared by the camera tests (imported, not collected)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.camera_sim.ptz import Position
from edge.camera_sim.video import SHARED_PERSON_MODEL, SHARED_PETS_DIR

PETS_DIR = SHARED_PETS_DIR
PETS_VIDEO = PETS_DIR / "vtest.avi"
USER, PASSWORD = "admin", "tourpulse-test"
PRESETS = {
    "wide": Position(),
    "entrance": Position(-0.8, 0.3, 0.5),
    "square": Position(0.8, 0.3, 0.5),
}
REPO = Path(__file__).resolve().parents[2]
LEGACY_PYTHON = Path(
    os.environ.get(
        "TP_ONVIF_LEGACY_PYTHON", REPO / ".tourpulse" / "onvif-legacy" / "bin" / "python"
    )
)


def require_pets() -> Path:
    if not PETS_VIDEO.is_file():
        pytest.skip(f"PETS 2009 clip not present at {PETS_VIDEO}")
    return PETS_VIDEO


def require_person_model() -> Path:
    if not SHARED_PERSON_MODEL.is_file():
        pytest.skip(f"YOLOX-nano model not present at {SHARED_PERSON_MODEL}")
    return SHARED_PERSON_MODEL


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


class MqttCollector:
    """Subscribes to a topic filter on the real broker and keeps every message."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, dict[str, object]]] = []
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.subscribe(topic_filter, qos=1)
        self._client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: Any) -> None:
        try:
            doc = json.loads(msg.payload)
            # The edge link sends a busy stream's events as one batch (a JSON array).
            for one in doc if isinstance(doc, list) else [doc]:
                self.messages.append((msg.topic, one))
        except ValueError:
            self.messages.append((msg.topic, {"raw": msg.payload}))

    def publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(10)

    def of_type(self, event_type: str) -> list[dict[str, object]]:
        return [m for _, m in list(self.messages) if m.get("type") == event_type]

    async def wait_for(self, what: str, predicate: Callable[[], object], limit_s: float = 60):
        """Poll until ``predicate()`` is truthy; fail with ``what`` after ``limit_s`` s."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"timed out waiting for {what}; got types "
            f"{sorted({str(m.get('type')) for _, m in self.messages})}"
        )

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def write_camera_configs(
    root: Path,
    onvif_port: int,
    site: str = "cu-chi-tunnels-ben-dinh",
    camera: str = "cam1",
    stream_url: str | None = None,
) -> None:
    """Device configs with one site and one camera served by a simulator on ``onvif_port``
    (credentials in TP_CAMERA_USER / TP_CAMERA_PASSWORD); ``stream_url`` is the camera's
    ``anonymised_stream`` (what the API relays), none by default."""
    stream = {"anonymised_stream": stream_url} if stream_url else {}
    (root / "sites.yaml").write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "id": site,
                        "name_vi": "Địa đạo Củ Chi",
                        "name_en": "Cu Chi",
                        "kind": "rural",
                        "lat": 11.06,
                        "lon": 106.5,
                        "capacity_persons": 3000,
                    }
                ]
            }
        )
    )
    (root / "cameras.yaml").write_text(
        yaml.safe_dump(
            {
                "cameras": [
                    {
                        "id": camera,
                        "site": site,
                        "name": "Cu Chi camera",
                        "setup": {
                            "onvif": {
                                "host": "127.0.0.1",
                                "port": onvif_port,
                                "credentials": {
                                    "username_env": "TP_CAMERA_USER",
                                    "password_env": "TP_CAMERA_PASSWORD",
                                },
                            },
                            **stream,
                            "presets": [
                                {
                                    "name": "wide",
                                    "zones": [
                                        {
                                            "name": "path",
                                            "polygon": [[0, 0.35], [1, 0.35], [1, 1], [0, 1]],
                                        }
                                    ],
                                    "lines": [{"name": "middle", "a": [0.5, 0.2], "b": [0.5, 1]}],
                                },
                                {"name": "entrance", "pan": -0.8, "zoom": 0.5},
                            ],
                            "public_ptz": {
                                "pan": [-0.9, 0.9],
                                "tilt": [-0.5, 0.5],
                                "zoom": [0, 0.8],
                            },
                            "tours": [
                                {
                                    "name": "t",
                                    "steps": [
                                        {
                                            "preset": "wide",
                                            "dwell_s": 30,
                                            "narration_vi": "Lối vào địa đạo",
                                            "narration_en": "The tunnel entrance",
                                        }
                                    ],
                                }
                            ],
                        },
                    }
                ]
            }
        )
    )
