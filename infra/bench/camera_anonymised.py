"""The edge agent's anonymised stream: head-blur recall on PETS and its CPU cost per camera.

* ``face_blur_recall``: annotated heads >= 24 px tall of people at least half in view,
  blurred (>= 90 % of the head covered) by the agent's pipeline (YOLOX-nano at its
  configured rate, heads carried between detections), over zoomed PTZ views of the clip
  (:mod:`edge.camera.blur_recall`); ``face_blur_recall_in_view`` counts every head >= 24 px
  wholly in view, even of a person the frame edge cuts to a head and shoulders;
  ``face_blur_recall_wide`` is the wide view over heads of every size (8-22 px there).
* ``anonymised_stream_cpu_pct_per_camera``: one camera's whole video path at 640x480
  10 fps in real time -- decode, counting with the detector at its configured rate,
  anonymising, I420 conversion, and the x264 encode + RTSP server child with one client
  pulling -- as % of one core (this process + the child). ``..._added_cpu_pct`` is what
  anonymising and encoding add to the counting the agent does anyway (same run, counting
  alone first); ``anonymise_ms_per_frame`` the blur + masks alone.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import psutil

from core.ports import free_port
from core.settings import get_settings
from edge.camera.anonymiser import FrameAnonymiser, PtzPosition
from edge.camera.blur_recall import ZOOMED_VIEWS, Recall, load_boxes, view_heads
from edge.camera.counting import PeopleCounter
from edge.camera.detector import PersonDetector
from edge.camera.geometry import Geometry
from edge.camera.stream_out import AnonymisedStream

W, H, FPS = 640, 480, 10
MIN_HEAD_PX = 24


def _say(msg: str) -> None:
    print(f"[bench] camera: {msg}", file=sys.stderr, flush=True)


def recall_figures(
    video: Path, tracks: Path, model: Path, every: int, max_frames: int
) -> dict[str, Any]:
    boxes = load_boxes(tracks)
    detector = PersonDetector(model, threads=1)
    half, whole = Recall(), Recall()
    views = [v for v in ZOOMED_VIEWS if v.tilt >= 0]  # tilt -1: no head reaches 24 px
    for pos in views:
        _say(f"head-blur recall, view pan {pos.pan:+.0f} tilt {pos.tilt:+.0f} zoom 1 ...")
        heads = view_heads(video, boxes, pos, detector, every, MIN_HEAD_PX, max_frames)
        half.add(Recall.of(heads, 0.5))
        whole.add(Recall.of(heads))
    _say("head-blur recall, wide view, heads of every size ...")
    wide = Recall.of(view_heads(video, boxes, PtzPosition(), detector, every, 0, max_frames))
    return {
        "face_blur_recall": round(half.recall, 3),
        "face_blur_heads": half.heads,
        "face_blur_recall_in_view": round(whole.recall, 3),
        "face_blur_heads_in_view": whole.heads,
        "face_blur_recall_wide": round(wide.recall, 3),
        "face_blur_heads_wide": wide.heads,
        "face_blur_views": f"{len(views)} views at zoom 1 (3x), first {max_frames} frames each",
    }


class Run(NamedTuple):
    cpu_s: float  # this process
    wall_s: float
    frames: int
    anonymise_s: float  # thread CPU: blur + masks
    send_s: float  # thread CPU: blur + masks + I420 + pipe write


def _run(
    video: Path,
    detector: PersonDetector,
    every: int,
    seconds: float,
    stream: AnonymisedStream | None,
) -> Run:
    """The video path in real time for ``seconds``."""
    me = psutil.Process()
    counter = PeopleCounter(Geometry((), (), ()), W, H, detector, every)
    anonymiser = FrameAnonymiser([], W, H)
    cap = cv2.VideoCapture(str(video))
    frames, anon_s, send_s = 0, 0.0, 0.0
    cpu0, t0 = sum(me.cpu_times()[:2]), time.monotonic()
    next_at = t0
    while time.monotonic() - t0 < seconds:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        small = cv2.resize(frame, (W, H))
        counter.process(small)
        if stream is not None:  # thread CPU time: what this camera's extra work costs
            started = time.thread_time()
            anonymiser.process(small, counter.boxes)
            anon_s += time.thread_time() - started
            stream.send(small)
            send_s += time.thread_time() - started
        frames += 1
        next_at += 1 / FPS
        time.sleep(max(0.0, next_at - time.monotonic()))
    cap.release()
    return Run(sum(me.cpu_times()[:2]) - cpu0, time.monotonic() - t0, frames, anon_s, send_s)


def cpu_figures(video: Path, model: Path, detect_fps: float, seconds: float) -> dict[str, Any]:
    every = max(1, round(FPS / detect_fps))
    detector = PersonDetector(model, threads=1)
    _say(f"counting alone, {seconds:.0f} s at {FPS} fps ...")
    base = _run(video, detector, every, seconds, None)
    url = f"rtsp://127.0.0.1:{free_port()}/anonymised"
    stream = AnonymisedStream(url, W, H, FPS)
    stream.start()
    assert stream.pid is not None
    child = psutil.Process(stream.pid)
    client = subprocess.Popen(  # one viewer pulling: the shared media encodes only then
        ["ffmpeg", "-loglevel", "fatal", "-rtsp_transport", "tcp", "-i", url, "-f", "null", "-"],
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        _say(f"counting + anonymising + encoding, {seconds:.0f} s at {FPS} fps ...")
        child0 = sum(child.cpu_times()[:2])
        run = _run(video, detector, every, seconds, stream)
        child_cpu = sum(child.cpu_times()[:2]) - child0
    finally:
        stream.stop()  # first: ffmpeg blocked on a silent socket would ignore SIGTERM
        client.terminate()
        try:
            client.wait(10)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
    wall = run.wall_s
    total = 100 * (run.cpu_s + child_cpu) / wall
    return {
        "anonymised_stream_cpu_pct_per_camera": round(total, 1),
        # measured directly: the agent thread's anonymise + convert + write, and the encoder
        "anonymised_stream_added_cpu_pct": round(100 * (run.send_s + child_cpu) / wall, 1),
        "anonymised_stream_encode_cpu_pct": round(100 * child_cpu / wall, 1),
        "counting_only_cpu_pct_per_camera": round(100 * base.cpu_s / base.wall_s, 1),
        "anonymise_ms_per_frame": round(1000 * run.anonymise_s / max(run.frames, 1), 2),
        "anonymised_stream_fps": round(run.frames / wall, 1),
        "anonymised_stream_detect_fps": detect_fps,
    }


def run(video: Path, tracks: Path, model: Path, quick: bool) -> dict[str, Any]:
    detect_fps = get_settings().camera_detect_fps
    every = max(1, round(FPS / detect_fps))
    cv2.setNumThreads(1)
    return {
        **cpu_figures(video, model, detect_fps, 10.0 if quick else 20.0),
        **recall_figures(video, tracks, model, every, 150 if quick else 400),
    }
