"""``tourpulse camera calibrate``: fit hand counts on a preset's counts, store it in the config.

Run on the edge box (or anywhere with a recording of the preset's view):
``tourpulse camera calibrate --camera ID --preset wide --video rec.mp4 --labels counts.csv``.
The counter runs over the recording exactly as the agent runs it; the raw counts at the
labelled frames are regressed on the hand counts and the fit is written under the preset in
``cameras.yaml``. Exit codes: 0 written, 2 bad input (message says which).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.settings import get_settings
from device_configs.loader import ConfigError, load_device_configs
from edge.camera.calibration import (
    DEFAULT_LEVEL,
    MIN_FRAMES,
    CalibrationError,
    count_frames,
    fit,
    predict,
    read_labels,
)
from edge.camera.config_writer import write_calibration
from edge.camera.counting import CounterKind
from edge.camera.detector import PersonDetector


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("camera", help="camera tools (calibration)")
    tools = group.add_subparsers(dest="camera_cmd", required=True, metavar="TOOL")
    p = tools.add_parser(
        "calibrate",
        help="fit hand-counted frames on a preset's counts and write it into cameras.yaml",
        description="Run the people counter over a recording of one preset's view, regress "
        "the hand counts (CSV 'frame,count', 0-based frame index) on the counter's counts "
        "at those frames (count_true ~ a*count + b) and store the fit, with what its "
        f"prediction interval needs, under the preset. At least {MIN_FRAMES} labelled "
        "frames; docs/cameras.md says how many a site should label.",
    )
    p.add_argument("--camera", required=True, help="camera id from the device configs")
    p.add_argument("--preset", required=True, help="preset the recording shows")
    p.add_argument("--video", required=True, type=Path, help="recording of that view")
    p.add_argument("--labels", required=True, type=Path, help="CSV of frame,count")
    p.add_argument(
        "--zone",
        default=None,
        help="the hand counts are of this zone (default: everyone in the frame)",
    )
    p.add_argument(
        "--level", type=float, default=DEFAULT_LEVEL, help="prediction interval coverage"
    )
    p.add_argument(
        "--configs",
        type=Path,
        default=None,
        help="device config directory (default: TP_DEVICE_CONFIGS setting)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the fit, write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config_dir = args.configs or get_settings().device_configs
    target = args.zone or "people"
    try:
        if not 0 < args.level < 1:
            raise CalibrationError("--level must be between 0 and 1")
        configs = load_device_configs(config_dir)
        camera = next((c for c in configs.cameras if c.id == args.camera), None)
        if camera is None or camera.setup is None:
            raise CalibrationError(f"no camera {args.camera!r} with a setup in {config_dir}")
        preset = camera.setup.preset(args.preset)
        labels = read_labels(args.labels)
        detector = _detector()
        kind: CounterKind = "detector" if detector is not None else "motion"
        print(
            f"{len(labels)} labelled frames; counting {target} in {args.video} with the "
            f"{kind} counter (as the agent counts) ...",
            flush=True,
        )
        raw = count_frames(
            args.video,
            preset,
            labels,
            target,
            progress=lambda n: print(f"  frame {n}", flush=True),
            detector=detector,
            detect_fps=get_settings().camera_detect_fps,
        )
        frames = sorted(labels)
        cal = fit([raw[f] for f in frames], [labels[f] for f in frames], target, args.level, kind)
    except KeyError:
        print(f"error: camera {args.camera} has no preset {args.preset!r}")
        return 2
    except (CalibrationError, ConfigError) as exc:
        print(f"error: {exc}")
        return 2
    mid = predict(cal, cal.x_mean)
    print(
        f"fit over {cal.n} frames: true = {cal.a:.3f} * count + {cal.b:.3f}, residual sd "
        f"{cal.residual_sd:.2f}; at the mean count {cal.x_mean:.1f}: {mid.value:.1f} "
        f"[{mid.low:.1f}, {mid.high:.1f}] ({cal.level:.0%})"
    )
    if args.dry_run:
        return 0
    try:
        path = write_calibration(config_dir, camera.id, preset.name, cal)
    except (ConfigError, LookupError, OSError) as exc:
        print(f"error: not written: {exc}")
        return 2
    print(f"written to {path} (camera {camera.id}, preset {preset.name})")
    return 0


def _detector() -> PersonDetector | None:
    """The agent's person detector when the deployment configures one (the fit is for the
    counter that will produce the counts), else None: the motion counter."""
    model = get_settings().camera_detector_model
    if model is None:
        return None
    try:
        return PersonDetector(model)
    except (OSError, RuntimeError, ImportError) as exc:
        raise CalibrationError(f"person detector {model}: {exc}") from None
