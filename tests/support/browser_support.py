"""Debian's Chromium for browser tests (never a downloaded browser build)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TP_CHROMIUM", "/usr/bin/chromium"))
#: Root in a sandbox without a display; no background calls to the closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} absent: apt-get install chromium"
)
