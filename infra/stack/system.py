"""Debian system packages, installed on demand when ``stack up`` runs as root.

``make deps`` normally installs everything first (infra/system-packages.txt); this is
the safety net for someone running ``tourpulse stack up`` on a fresh box.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def apt_install(packages: list[str], say: Callable[[str], None]) -> bool:
    """Install ``packages`` with apt-get if we are root on Debian; True if it succeeded."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        say(f"  (not root or no apt-get: cannot install {' '.join(packages)})")
        return False
    env = {**os.environ, **APT_ENV}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    say(f"  installing {' '.join(packages)} with apt-get ...")
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode == 0:
        return True
    say("  apt-get install failed; running apt-get update and retrying ...")
    subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        say(f"  apt-get install {' '.join(packages)} failed:\n{result.stderr[-2000:]}")
    return result.returncode == 0
