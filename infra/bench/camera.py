"""``tourpulse bench camera``: counting speed and accuracy, WebRTC viewers per core.

* ``counting_fps``: the people-counting pipeline on the PETS 2009 S2.L1 clip at 640x480
  with OpenCV limited to one thread (one core).
* ``zone_count_mae`` / ``line_count_error_pct``: against the clip's ground-truth tracks
  (see :mod:`edge.camera.accuracy`); whole-frame zone and a vertical line mid-frame.
* ``first_frame_ms`` {1, 10, 50}: p95 time from WHEP offer to the first decoded frame with
  that many aiortc viewers joining at once, the camera pull already open.
* ``viewers_per_core``: viewers / CPU share of the process serving them at 50 viewers. That
  process also runs the viewers' H.264 decoders, so the figure is a lower bound.

The WebRTC part runs in a private network namespace (needs root or unprivileged user
namespaces) because aioice never offers 127.0.0.1 as a candidate.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2

from device_configs.camera import Preset
from edge.camera.accuracy import evaluate
from edge.camera_sim.video import REPO_ROOT, SHARED_PETS_DIR
from infra.bench.context import BenchContext, BenchError

SCENARIO = REPO_ROOT / "tests" / "camera_whep_scenario.py"
PRESET = Preset.model_validate(
    {
        "name": "wide",
        "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
        "lines": [{"name": "middle", "a": [0.5, 0.2], "b": [0.5, 1.0]}],
    }
)


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _viewers(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        script = (
            "ip link set lo up && ip addr add 127.0.0.2/8 dev lo && "
            f"exec {sys.executable} {SCENARIO} aiortc {n} {out}"
        )
        proc = subprocess.run(
            ["unshare", "-n", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if not out.exists():
            raise BenchError(f"WebRTC scenario with {n} viewers failed: {proc.stdout[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    if "error" in result:
        raise BenchError(f"WebRTC scenario with {n} viewers: {result['error']}")
    return result


def run(ctx: BenchContext) -> dict[str, Any]:
    video, tracks = SHARED_PETS_DIR / "vtest.avi", SHARED_PETS_DIR / "PETS2009-S2L1_tracks_mot.csv"
    if not (video.is_file() and tracks.is_file()):
        raise BenchError(f"PETS 2009 clip and ground truth needed in {SHARED_PETS_DIR}")
    cv2.setNumThreads(1)
    print("[bench] camera: counting on PETS 2009 S2.L1 ...", file=sys.stderr, flush=True)
    acc = evaluate(video, tracks, PRESET)
    first_frame: dict[str, float] = {}
    per_core = 0.0
    for n in (1, 2) if ctx.quick else (1, 10, 50):
        print(f"[bench] camera: {n} WebRTC viewers ...", file=sys.stderr, flush=True)
        r = _viewers(n)
        first_frame[str(n)] = round(_p95(r["first_frame_ms"]), 1)
        share = r["steady_cpu_s"] / r["steady_wall_s"]
        per_core = n / share if share > 0 else 0.0
    return {
        "counting_fps": round(acc.fps, 1),
        "zone_count_mae": round(acc.zone_mae["all"], 3),
        "line_count_error_pct": round(acc.line_error_pct, 1),
        "line_truth": acc.line_truth["middle"],
        "line_counted": acc.line_counted["middle"],
        "viewers_per_core": round(per_core, 1),
        "first_frame_ms": first_frame,
        "resolution": "640x480",
    }
