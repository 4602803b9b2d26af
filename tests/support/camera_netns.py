"""Run ``camera_whep_scenario.py`` in a private network namespace with 127.0.0.2 on lo."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SCENARIO = Path(__file__).with_name("camera_whep_scenario.py")


def require_netns() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) missing")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")


async def run_scenario(mode: str, viewers: int = 0, limit_s: float = 240) -> dict[str, object]:
    require_netns()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        script = (
            "ip link set lo up && ip addr add 127.0.0.2/8 dev lo && "
            f"exec {sys.executable} {SCENARIO} {mode} {viewers} {out}"
        )
        proc = await asyncio.create_subprocess_exec(
            "unshare",
            "-n",
            "sh",
            "-c",
            script,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            log, _ = await asyncio.wait_for(proc.communicate(), limit_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"WebRTC scenario {mode} did not finish in {limit_s}s") from None
        assert out.exists(), f"scenario crashed:\n{log.decode()[-3000:]}"
        result: dict[str, object] = json.loads(out.read_text())
        assert "error" not in result, f"{result['error']}\n{log.decode()[-3000:]}"
        return result
