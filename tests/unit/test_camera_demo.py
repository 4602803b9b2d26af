"""The camera part of ``tourpulse demo``: processes and environment for the demo cameras."""

from __future__ import annotations

import sys

from core.settings import DEVICE_CONFIG_DIR
from edge.camera_sim.demo import DEMO_CREDENTIALS, demo_children, demo_env

DEMO_CAMERAS = [
    "cu-chi-tunnels-ben-dinh-cam1",
    "phu-hoa-dong-rice-paper-village-cam1",
    "can-gio-mangrove-cam1",
]


def test_one_simulator_then_one_agent_per_demo_camera() -> None:
    prefix = [sys.executable, "-m", "infra.cli"]
    children = demo_children(DEVICE_CONFIG_DIR, prefix)
    assert children[0] == ("camera-sim", [*prefix, "simulate", "camera", "--demo"])
    assert children[1:] == [
        (f"camera-agent-{cam}", [*prefix, "edge", "camera", "--camera", cam])
        for cam in DEMO_CAMERAS
    ]


def test_demo_env_fills_only_what_is_unset() -> None:
    env = demo_env(DEVICE_CONFIG_DIR, {})
    assert (env["TP_CAMERA_USER"], env["TP_CAMERA_PASSWORD"]) == DEMO_CREDENTIALS
    assert env["TP_CAMERA_OPERATOR_KEY"]
    assert demo_env(DEVICE_CONFIG_DIR, {**env}) == {}
    mine = demo_env(DEVICE_CONFIG_DIR, {"TP_CAMERA_PASSWORD": "real"})
    assert "TP_CAMERA_PASSWORD" not in mine and mine["TP_CAMERA_USER"] == DEMO_CREDENTIALS[0]
