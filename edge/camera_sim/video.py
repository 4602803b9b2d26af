"""Where the simulated cameras' video comes from.

The PETS 2009 S2.L1 clip is research-use data and never committed. Tests read it from the
shared data folder beside the repository; a fresh Debian machine gets the identical file
from the ``opencv-doc`` package (only ``vtest.avi`` is extracted from the .deb).
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PETS_DIR = REPO_ROOT.parent / "shared" / "data" / "video" / "pets2009_s2l1"
#: YOLOX-nano from ../shared/models, for the demo, tests and benchmarks (a deployment
#: installs the model and names it in TP_CAMERA_DETECTOR_MODEL).
SHARED_PERSON_MODEL = REPO_ROOT.parent / "shared" / "models" / "yolox_nano" / "yolox_nano.onnx"
DEB_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"


class VideoMissing(RuntimeError):
    pass


def find_video(data_dir: Path, explicit: str | None = None) -> Path:
    candidates = (
        [Path(explicit)]
        if explicit
        else [
            SHARED_PETS_DIR / "vtest.avi",
            data_dir / "video" / "vtest.avi",
            Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
        ]
    )
    for path in candidates:
        if path.is_file():
            return path
    raise VideoMissing(
        "no pedestrian video found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "); run `tourpulse simulate camera --fetch-video`"
    )


def fetch_video(data_dir: Path, progress: Callable[[str], None]) -> Path:
    """``apt-get download opencv-doc`` and extract only vtest.avi into ``data_dir/video``."""
    target = data_dir / "video" / "vtest.avi"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        progress("downloading opencv-doc (~96 MB) with apt-get download ...")
        dl = subprocess.run(
            ["apt-get", "download", "opencv-doc"],
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if dl.returncode != 0 or not debs:
            raise VideoMissing(f"apt-get download opencv-doc failed: {dl.stderr.strip()}")
        progress(f"extracting vtest.avi from {debs[0].name} ...")
        with subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    if member.name == DEB_MEMBER:
                        src = tar.extractfile(member)
                        assert src is not None
                        target.write_bytes(src.read())
                        break
    if not target.is_file():
        raise VideoMissing("vtest.avi not found inside opencv-doc")
    return target
