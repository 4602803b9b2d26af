"""The site box's agent (``python -m edge.wifi``) loads only what a RADIUS-only site uses.

Why: its RSS was 90 MB at the benchmark's rate (goal <= 80); ``-X importtime`` showed the
central settings (pydantic-settings), every event model, aiohttp (Meraki, disabled) and
dnspython (pulled in by paho) loaded for nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

UNUSED = (
    "pydantic_settings", "core.settings", "aiohttp", "dns", "schemas.registry",
    "schemas.camera", "schemas.portal", "edge.wifi.meraki", "edge.wifi.syslog",
    "aiokafka", "psycopg", "cv2", "fastapi",
)  # fmt: skip

PROBE = """
import json, runpy, sys
sys.argv = ["edge.wifi", "--help"]
try:
    runpy.run_module("edge.wifi", run_name="__main__")
except SystemExit:
    pass
import edge.wifi.agent
print(json.dumps(sorted(m for m in sys.modules if sys.modules[m] is not None)))
"""


def test_agent_entry_point_imports_nothing_it_does_not_use() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "edge.wifi.radius" in loaded
    assert sorted(m for m in UNUSED if m in loaded) == []
