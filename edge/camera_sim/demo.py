"""The camera part of ``tourpulse demo``: which processes to run and with which environment.

The demo runs the same entry points an operator would: one ``tourpulse simulate camera
--demo`` serving every camera that has a ``setup`` in the device configs (the three demo
cameras at Cu Chi, Can Gio and Phu Hoa Dong), and one ``tourpulse edge camera --camera <id>``
per camera. Simulator, agents and API read the cameras' credentials from the environment
variables the configs name, so the demo sets demo values for them once, in its own
environment, before starting any child (:func:`demo_env`). Real deployments set real ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from device_configs.loader import load_device_configs
from device_configs.models import Camera
from edge.camera_sim.video import SHARED_PERSON_MODEL

#: Demo-only credentials for the simulated cameras (never used by a real camera).
DEMO_CREDENTIALS = ("admin", "tourpulse-demo")
#: Operators take PTZ control from viewers with this key (``X-Operator-Key``) in the demo.
DEMO_OPERATOR_KEY = "tourpulse-demo-operator"


def demo_cameras(device_configs: Path) -> list[Camera]:
    """The cameras the simulator serves: every configured camera with a ``setup``."""
    return [c for c in load_device_configs(device_configs).cameras if c.setup is not None]


def demo_env(device_configs: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables to add to the demo's environment: each camera's credential variables and
    the operator key, with demo values -- only those not set already."""
    source = os.environ if environ is None else environ
    wanted = {"TP_CAMERA_OPERATOR_KEY": DEMO_OPERATOR_KEY}
    if SHARED_PERSON_MODEL.is_file():  # the detector counter where ../shared has the model
        wanted["TP_CAMERA_DETECTOR_MODEL"] = str(SHARED_PERSON_MODEL)
    for camera in demo_cameras(device_configs):
        assert camera.setup is not None
        credentials = camera.setup.onvif.credentials
        wanted[credentials.username_env] = DEMO_CREDENTIALS[0]
        wanted[credentials.password_env] = DEMO_CREDENTIALS[1]
    return {k: v for k, v in wanted.items() if k not in source}


def demo_children(device_configs: Path, tourpulse: list[str]) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of the camera processes in start order: the simulator, then one
    agent per camera. ``tourpulse`` is the command prefix, e.g. ``[sys.executable, "-m",
    "infra.cli"]``. The API (started by the demo anyway) serves the tours."""
    children = [("camera-sim", [*tourpulse, "simulate", "camera", "--demo"])]
    children += [
        (f"camera-agent-{c.id}", [*tourpulse, "edge", "camera", "--camera", c.id])
        for c in demo_cameras(device_configs)
    ]
    return children
