"""``tourpulse simulate camera``: ONVIF + RTSP simulated PTZ cameras for configured sites.

Every camera in the device configs with a ``setup`` (or those named with ``--cameras``) is
served on its configured ONVIF port with its configured presets, streaming the pedestrian
video found by :func:`edge.camera_sim.video.find_video`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from core.settings import get_settings
from device_configs.loader import ConfigError, load_device_configs
from edge.camera_sim.demo import demo_env
from edge.camera_sim.ptz import Position
from edge.camera_sim.rtsp_child import RtspChildError
from edge.camera_sim.server import CameraSim
from edge.camera_sim.video import VideoMissing, fetch_video, find_video

log = logging.getLogger(__name__)
#: In the demo a loud noise now and then gives the IOC audio incidents to show.
DEMO_NOISE_EVERY_S = 90.0


def subcommand_group(sub: Any, name: str, help_text: str, dest: str) -> Any:
    """The sub-subparsers of ``tourpulse <name>``, created unless another module already did.

    ``simulate`` and ``edge`` are shared by several packages (wifi, camera...).
    """
    parser = sub.choices.get(name)
    if parser is None:
        parser = sub.add_parser(name, help=help_text)
        return parser.add_subparsers(dest=dest, required=True, metavar="KIND")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=dest, required=True, metavar="KIND")


def register(sub: Any) -> None:
    kinds = subcommand_group(sub, "simulate", "simulate edge devices", "sim_kind")
    p = kinds.add_parser(
        "camera",
        help="simulated ONVIF PTZ cameras with an RTSP stream",
        description="Serve ONVIF Device/Media/PTZ/Events (WS-UsernameToken) and an RTSP "
        "H.264 + G.711 stream of a looping pedestrian video, with PTZ as a moving crop window. "
        "Credentials come from each camera's configured environment variables.",
    )
    p.add_argument(
        "--cameras",
        default=None,
        help="comma-separated camera ids (default: every camera with a setup)",
    )
    p.add_argument(
        "--video",
        default=None,
        help="video file (default: shared PETS clip or the one fetched with --fetch-video)",
    )
    p.add_argument(
        "--fetch-video",
        action="store_true",
        help="extract vtest.avi from Debian's opencv-doc package into the data dir, then exit",
    )
    p.add_argument(
        "--noise-every",
        type=float,
        default=None,
        help=f"make a loud noise every N seconds (0: never; default 0, {DEMO_NOISE_EVERY_S:g} "
        "with --demo)",
    )
    p.add_argument(
        "--audio",
        choices=("pcmu", "aac"),
        default="pcmu",
        help="microphone codec: G.711 mu-law (default) or AAC-LC, which the relay transcodes",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="for `tourpulse demo`: fetch the video first if none is found, give unset "
        "camera credential variables demo values, and make occasional loud noises",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.fetch_video:
        try:
            print(f"video ready: {fetch_video(settings.data_dir, progress=print)}")
        except VideoMissing as exc:
            print(f"error: {exc}")
            return 1
        return 0
    noise_every = args.noise_every
    try:
        if args.demo:
            video = _demo_video(settings.data_dir, args.video)
            defaults = demo_env(settings.device_configs)
            os.environ.update(defaults)
            if defaults:
                print(f"demo credentials for: {', '.join(sorted(defaults))}", flush=True)
            noise_every = DEMO_NOISE_EVERY_S if noise_every is None else noise_every
        else:
            video = find_video(settings.data_dir, args.video)
        configs = load_device_configs(settings.device_configs)
    except (VideoMissing, ConfigError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"video: {video}", flush=True)
    wanted = set(args.cameras.split(",")) if args.cameras else None
    sims: list[CameraSim] = []
    for cam in configs.cameras:
        if cam.setup is None or (wanted is not None and cam.id not in wanted):
            continue
        try:
            user, password = cam.setup.onvif.credentials.resolve()
        except LookupError as exc:
            print(f"error: {cam.id}: {exc}")
            return 2
        presets = {p.name: Position(p.pan, p.tilt, p.zoom) for p in cam.setup.presets}
        sims.append(
            CameraSim(
                video,
                username=user,
                password=password,
                host=cam.setup.onvif.host,
                onvif_port=cam.setup.onvif.port,
                presets=presets,
                serial=cam.id,
                audio=args.audio,
            )
        )
    if not sims:
        print("error: no camera with a setup selected")
        return 2
    try:
        asyncio.run(_serve(sims, noise_every or 0.0))
    except (RtspChildError, OSError) as exc:
        print(f"error: {exc}")
        return 1
    return 0


def _demo_video(data_dir: Path, explicit: str | None) -> Path:
    """The shared PETS clip or an earlier fetch; otherwise fetch it now (apt, ~96 MB)."""
    try:
        return find_video(data_dir, explicit)
    except VideoMissing:
        if explicit:
            raise
        print("no pedestrian video yet: fetching it from Debian's opencv-doc", flush=True)
        return fetch_video(data_dir, progress=lambda line: print(line, flush=True))


async def _serve(sims: list[CameraSim], noise_every: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[CameraSim] = []
    try:
        for sim in sims:
            await sim.start()
            started.append(sim)
            print(
                f"{sim.serial}: ONVIF {sim.base_url}/onvif/device_service  RTSP {sim.rtsp_url}",
                flush=True,
            )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), noise_every or None)
            if noise_every and not stop.is_set():
                for sim in started:
                    await sim.loud_noise()
    finally:
        for sim in started:
            await sim.close()
