"""``tourpulse bench camera``: counting speed and accuracy, WebRTC viewers per core.

* ``face_blur_recall``, ``anonymised_stream_cpu_pct_per_camera`` and their companions: the
  edge agent's anonymised stream, see :mod:`infra.bench.camera_anonymised`.
* ``counting_fps``: the people-counting pipeline on the PETS 2009 S2.L1 clip at 640x480
  with OpenCV limited to one thread (one core).
* ``zone_count_mae`` / ``line_count_error_pct``: against the clip's ground-truth tracks
  (see :mod:`edge.camera.accuracy`); whole-frame zone and a vertical line mid-frame.
* ``first_frame_ms`` {1, 10, 50}: p95 time from the WHEP offer POST to the viewer's first
  decoded frame (the first picture), that many aiortc viewers joining at once, the camera
  pull already open. ``first_rtp_frame_ms`` is the same to the first complete RTP frame
  received. A joiner is primed with the relay's cached GOP (keyframe onwards), so it does
  not wait for the camera's next keyframe (one a second).
* ``viewers_per_core``: viewers served at the camera's full frame rate (frames delivered /
  camera fps, so a starved viewer counts only partly) / CPU share of the API process serving
  them, in a steady 10 s window at the largest viewer count. The API runs alone in its
  process (uvicorn, the camera router); the viewers run in separate load processes
  (``tests/support/camera_whep_load.py``, at most 25 each) and decode only their first frame, so
  their work is not in the figure.
  ``server_cpu_pct`` gives the API's share at each count, ``server_idle_cpu_pct`` with the
  camera pull open and nobody watching, ``viewer_fps_min`` the slowest viewer's receive rate
  (the camera sends 10 fps) and ``sessions_dropped`` the sessions the server gave up on;
  ``join_server_cpu_pct`` is the API's share while all the viewers join (from the first
  offer to the last first frame). ``*_wait_pct`` is the time the API's threads were ready
  to run but waited for a CPU (``/proc/<pid>/task/*/schedstat``), as a share of the window:
  the part of the latency the machine's contention, not the server's work, accounts for.
* ``picture_psnr_db_min``: Chromium plays the relay's stream from a camera writing two slices
  per frame with SPS/PPS before each keyframe slice; grabs of the <video> element vs the
  best-matching source frame (luma PSNR, :mod:`infra.bench.camera_picture`), worst grab.
  ``corrupted_frames``: grabs under 25 dB (of ``picture_grabs``). ``audio_to_viewer``: the
  browser decoded the camera's microphone, non-silent (WebRTC stats energy > 0), both for a
  G.711 camera (passed through) and an AAC one (transcoded to Opus once per camera);
  ``audio_to_viewer_by_codec`` has each.

The WebRTC part runs in a private network namespace (needs root or unprivileged user
namespaces) because aioice never offers 127.0.0.1 as a candidate.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from device_configs.camera import Preset
from edge.camera.accuracy import evaluate
from edge.camera.detector import PersonDetector
from edge.camera_sim.video import REPO_ROOT, SHARED_PERSON_MODEL, SHARED_PETS_DIR
from infra.bench import camera_anonymised
from infra.bench.camera_picture import measure
from infra.bench.context import BenchContext, BenchError

SCENARIO = REPO_ROOT / "tests" / "support" / "camera_whep_scenario.py"
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


def _heard(audio: dict[str, Any] | None) -> bool:
    """The browser decoded samples with energy (WebRTC inbound-rtp stats), not silence."""
    return bool(audio and audio.get("samples")) and bool(audio and audio.get("energy", 0) > 0)


def _detector_figures(video: Path, tracks: Path) -> dict[str, Any]:
    """YOLOX-nano: detections per second on one core (tiles, 640x480) and PETS accuracy
    of the detector counter at 5 detections/s; empty without the model."""
    if not SHARED_PERSON_MODEL.is_file():
        print(f"[bench] camera: no model at {SHARED_PERSON_MODEL}: detector skipped",
              file=sys.stderr)  # fmt: skip
        return {}
    print("[bench] camera: person detector on PETS 2009 S2.L1 ...", file=sys.stderr, flush=True)
    detector = PersonDetector(SHARED_PERSON_MODEL, threads=1)
    cap = cv2.VideoCapture(str(video))
    frames: list[Any] = []
    while len(frames) < 60:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (640, 480)))
    cap.release()
    detector.detect(frames[0])  # warm-up: first run allocates
    started = time.perf_counter()
    for frame in frames:
        detector.detect(frame)
    fps = len(frames) / (time.perf_counter() - started)
    acc = evaluate(video, tracks, PRESET, detector=detector, detect_every=2)
    return {
        "detector_fps_one_core": round(fps, 1),
        "zone_count_mae_detector": round(acc.zone_mae["all"], 3),
        "zone_count_mae_share_detector": round(acc.mae_share("all"), 3),
        "line_count_error_pct_detector": round(acc.line_error_pct, 1),
        "line_counted_detector": acc.line_counted["middle"],
        "mean_true_people": round(acc.mean_true["all"], 2),
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    video, tracks = SHARED_PETS_DIR / "vtest.avi", SHARED_PETS_DIR / "PETS2009-S2L1_tracks_mot.csv"
    if not (video.is_file() and tracks.is_file()):
        raise BenchError(f"PETS 2009 clip and ground truth needed in {SHARED_PETS_DIR}")
    cv2.setNumThreads(1)
    print("[bench] camera: counting on PETS 2009 S2.L1 ...", file=sys.stderr, flush=True)
    acc = evaluate(video, tracks, PRESET)
    detector_figures = _detector_figures(video, tracks)
    anonymised = (
        camera_anonymised.run(video, tracks, SHARED_PERSON_MODEL, ctx.quick)
        if SHARED_PERSON_MODEL.is_file()
        else {}
    )
    web: dict[str, dict[str, float]] = {
        k: {}
        for k in (
            "first_frame_ms",
            "first_rtp_frame_ms",
            "answer_ms",
            "server_cpu_pct",
            "join_server_cpu_pct",
            "join_server_wait_pct",
            "server_wait_pct",
        )
    }
    per_core, idle_pct, fps_min, dropped = 0.0, 0.0, float("inf"), 0
    load_before = os.getloadavg()[0]
    for n in (1, 2) if ctx.quick else (1, 10, 50):
        print(f"[bench] camera: {n} WebRTC viewers ...", file=sys.stderr, flush=True)
        r = _viewers(n)
        for key in ("first_frame_ms", "first_rtp_frame_ms", "answer_ms"):
            web[key][str(n)] = round(_p95(r[key]), 1)
        share = r["server_cpu_s"] / r["steady_wall_s"]
        # viewers served at the camera's full frame rate: a starved viewer counts partly
        served = sum(r["steady_frames"]) / r["steady_wall_s"] / r["camera_fps"]
        web["server_cpu_pct"][str(n)] = round(100 * share, 1)
        web["join_server_cpu_pct"][str(n)] = round(
            100 * r["join_server_cpu_s"] / r["join_wall_s"], 1
        )
        web["join_server_wait_pct"][str(n)] = round(
            100 * r["join_server_wait_s"] / r["join_wall_s"], 1
        )
        web["server_wait_pct"][str(n)] = round(100 * r["server_wait_s"] / r["steady_wall_s"], 1)
        per_core = served / share if share > 0 else 0.0
        idle_pct = max(idle_pct, 100 * r["server_idle_cpu_s"] / r["idle_wall_s"])
        fps_min = min(fps_min, min(r["steady_frames"]) / r["steady_wall_s"])
        dropped += r["dropped_by_server"]
    print("[bench] camera: picture and sound in Chromium ...", file=sys.stderr, flush=True)
    chromium = os.environ.get("TP_CHROMIUM", "/usr/bin/chromium")
    seen = asyncio.run(measure(video, chromium, slices=2, grabs=10 if ctx.quick else 30))
    heard = {codec: _heard(got) for codec, got in seen["audio"].items()}
    return {
        "counting_fps": round(acc.fps, 1),
        "zone_count_mae": round(acc.zone_mae["all"], 3),
        "line_count_error_pct": round(acc.line_error_pct, 1),
        "line_truth": acc.line_truth["middle"],
        "line_counted": acc.line_counted["middle"],
        "zone_count_mae_motion": round(acc.zone_mae["all"], 3),
        "zone_count_mae_share_motion": round(acc.mae_share("all"), 3),
        "line_count_error_pct_motion": round(acc.line_error_pct, 1),
        **detector_figures,
        **anonymised,
        "viewers_per_core": round(per_core, 1),
        **web,
        "server_idle_cpu_pct": round(idle_pct, 2),
        "viewer_fps_min": round(fps_min, 1),
        "sessions_dropped": dropped,
        # the machine's 1-min load average before/after: other work competes for 2 cores
        "loadavg_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "stream": "640x480 H.264 10 fps ~700 kbit/s, keyframe every second",
        "resolution": "640x480",
        # browser-decoded grabs vs the source clip, camera writing 2 slices/frame + SPS/PPS
        "picture_psnr_db_min": round(min(seen["psnr_db"], default=0.0), 1),
        "corrupted_frames": seen["corrupted"],
        "picture_grabs": len(seen["psnr_db"]),
        "audio_to_viewer": all(heard.values()),
        "audio_to_viewer_by_codec": heard,
    }
