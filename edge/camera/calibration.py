"""Per-preset count calibration: fit hand counts on the counter's counts, apply it live.

The counter's bias depends on the view (people far away are missed, groups merge), so a
site labels a few dozen frames per preset and we fit ``count_true ~ a*count + b`` by ordinary
least squares. Every count event then carries the corrected value and an OLS prediction
interval, so the IOC can show how far a number can be trusted instead of a bare figure.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2

from device_configs.camera import Calibration, CameraSetup, Preset
from edge.camera.counting import CounterKind, PeopleCounter, detect_every
from edge.camera.detector import PersonDetector
from edge.camera.geometry import Geometry
from edge.camera.video import PROC_H, PROC_W
from schemas.camera import CalibratedCount, VideoMetadata

#: Fewer labelled frames than this give intervals too wide to be useful (t grows fast at
#: low degrees of freedom); docs/cameras.md says how many a site should label.
MIN_FRAMES = 8
DEFAULT_LEVEL = 0.9


class CalibrationError(ValueError):
    """The labels cannot give a fit (too few, unreadable, or no spread in the counts)."""


def student_t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t (p > 0.5), by bisection on a Simpson-integrated CDF.

    numpy has no t distribution and scipy is not a dependency; the fit runs once per
    calibration, so a few thousand pdf evaluations cost nothing.
    """
    if not 0.5 < p < 1 or df < 1:
        raise ValueError("need 0.5 < p < 1 and df >= 1")
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        total = 0.0
        for i in range(steps + 1):
            w = 1 if i in (0, steps) else (4 if i % 2 else 2)
            total += w * (1 + (i * h) ** 2 / df) ** (-(df + 1) / 2)
        return 0.5 + norm * total * h / 3

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def fit(
    raw: Iterable[float],
    truth: Iterable[float],
    target: str = "people",
    level: float = 0.9,
    counter: CounterKind = "motion",
) -> Calibration:
    """OLS of the true counts on the raw counts, with what a prediction interval needs."""
    xs, ys = list(raw), list(truth)
    n = len(xs)
    if n != len(ys):
        raise CalibrationError("raw and true counts differ in length")
    if n < MIN_FRAMES:
        raise CalibrationError(f"{n} labelled frames; at least {MIN_FRAMES} are needed")
    x_mean, y_mean = sum(xs) / n, sum(ys) / n
    sxx = sum((x - x_mean) ** 2 for x in xs)
    if sxx == 0:
        raise CalibrationError(
            "the counter gave the same count on every labelled frame: label frames "
            "with different crowd sizes"
        )
    a = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    b = y_mean - a * x_mean
    sse = sum((y - (a * x + b)) ** 2 for x, y in zip(xs, ys, strict=True))
    return Calibration(
        target=target,
        counter=counter,
        a=round(a, 6),
        b=round(b, 6),
        n=n,
        x_mean=round(x_mean, 6),
        sxx=round(sxx, 6),
        residual_sd=round(math.sqrt(sse / (n - 2)), 6),
        level=level,
        t=round(student_t_quantile((1 + level) / 2, n - 2), 6),
    )


def predict(cal: Calibration, raw: float) -> CalibratedCount:
    """Calibrated count and its prediction interval for one raw count (never below 0)."""
    value = cal.a * raw + cal.b
    half = cal.t * cal.residual_sd * math.sqrt(1 + 1 / cal.n + (raw - cal.x_mean) ** 2 / cal.sxx)
    return CalibratedCount(
        target=cal.target,
        value=round(max(value, 0.0), 2),
        low=round(max(value - half, 0.0), 2),
        high=round(max(value + half, 0.0), 2),
        level=cal.level,
        labelled_frames=cal.n,
    )


def raw_count(meta: VideoMetadata, target: str) -> int | None:
    return meta.people if target == "people" else meta.zones.get(target)


def with_calibration(meta: VideoMetadata, setup: CameraSetup) -> VideoMetadata:
    """The event as the agent sends it: calibrated when the current preset has a fit."""
    if meta.preset is None:
        return meta
    try:
        cal = setup.preset(meta.preset).calibration
    except KeyError:
        return meta
    raw = None if cal is None else raw_count(meta, cal.target)
    if cal is None or raw is None or cal.counter != meta.counter:
        return meta  # no fit, or one made for the other counter: its bias is not this one's
    return meta.model_copy(update={"calibrated": predict(cal, raw)})


def read_labels(path: Path) -> dict[int, float]:
    """Hand counts from a CSV of ``frame,count`` rows (0-based frame index; header optional)."""
    labels: dict[int, float] = {}
    try:
        with path.open(newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or row[0].strip().startswith("#"):
                    continue
                if lineno == 1 and not row[0].strip().isdigit():
                    continue  # header
                try:
                    frame, count = int(row[0]), float(row[1])
                except (IndexError, ValueError):
                    raise CalibrationError(
                        f"{path}:{lineno}: expected 'frame,count', got {','.join(row)!r}"
                    ) from None
                if frame < 0 or count < 0:
                    raise CalibrationError(f"{path}:{lineno}: frame and count must be >= 0")
                labels[frame] = count
    except OSError as exc:
        raise CalibrationError(f"cannot read {path}: {exc}") from None
    return labels


def count_frames(
    video: Path,
    preset: Preset,
    frames: Iterable[int],
    target: str = "people",
    progress: Callable[[int], None] | None = None,
    detector: PersonDetector | None = None,
    detect_fps: float = 5.0,
) -> dict[int, int]:
    """The counter's raw count at each wanted frame, run exactly as the agent runs it: the
    person detector at the agent's rate when one is given, else the motion counter."""
    wanted = set(frames)
    if target != "people" and target not in {z.name for z in preset.zones}:
        raise CalibrationError(f"preset {preset.name!r} has no zone {target!r}")
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise CalibrationError(f"cannot open video {video}")
    every = detect_every(cap.get(cv2.CAP_PROP_FPS), detect_fps)
    geometry = Geometry.from_preset(preset, PROC_W, PROC_H)
    counter = PeopleCounter(geometry, PROC_W, PROC_H, detector, every)
    found: dict[int, int] = {}
    last = max(wanted, default=-1)
    frame_no = 0
    try:
        while frame_no <= last:
            ok, frame = cap.read()
            if not ok:
                break
            counts = counter.process(cv2.resize(frame, (PROC_W, PROC_H)))
            if frame_no in wanted:
                found[frame_no] = counts.people if target == "people" else counts.zones[target]
            if progress is not None and frame_no % 100 == 0:
                progress(frame_no)
            frame_no += 1
    finally:
        cap.release()
    missing = sorted(wanted - found.keys())
    if missing:
        raise CalibrationError(
            f"video has {frame_no} frames; labelled frames beyond it: {missing[:5]}"
        )
    return found
