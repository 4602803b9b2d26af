"""The camera WebRTC scenario's child processes: the camera API alone (``serve`` mode of
``camera_whep_scenario.py``, so its CPU is measured apart from everything else) and the
``camera_whep_load.py`` viewer processes, with what the scenario measures of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import httpx
import psutil
import uvicorn
from fastapi import FastAPI

from api.cameras import router as cameras
from api.errors import install_error_handlers
from core.settings import Settings
from device_configs.loader import load_device_configs
from tests.support.net import free_port

SCENARIO = Path(__file__).with_name("camera_whep_scenario.py")
LOAD = Path(__file__).with_name("camera_whep_load.py")
VIEWERS_PER_LOAD_PROCESS = 25


async def wait_live(api: str, server: asyncio.subprocess.Process) -> None:
    """The API opens the camera pull at start-up; viewers are timed from then on."""
    status: object = "no answer"
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(1200):
            if server.returncode is not None:
                raise RuntimeError(f"the API process exited with {server.returncode}")
            try:
                status = (await http.get(f"{api}/api/v1/cameras/cam1/status")).json()
            except httpx.TransportError:  # not listening yet
                status = "not listening"
            if isinstance(status, dict) and status["live"]:
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"camera feed never went live: {status}")


async def start_api(cfg: Path, mqtt_port: int) -> tuple[str, asyncio.subprocess.Process]:
    """The camera API in its own process (``serve`` mode), live once the camera pull is open."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(SCENARIO), "serve", str(cfg), str(port), str(mqtt_port)
    )
    api = f"http://127.0.0.1:{port}"
    try:
        await wait_live(api, server)
    except BaseException:
        await stop_process(server)
        raise
    return api, server


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def serve(cfg: Path, port: int, mqtt_port: int) -> None:
    """The camera router alone under uvicorn: what the measured server process runs."""
    app = FastAPI(lifespan=cameras.lifespan)
    app.state.settings = Settings(device_configs=cfg, mqtt_port=mqtt_port)
    app.state.device_configs = load_device_configs(cfg)
    install_error_handlers(app)
    app.include_router(cameras.router)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def server_cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def server_wait_s(pid: int) -> float:
    """Seconds the process's threads were runnable but waiting for a CPU (schedstat run
    delay): high when the machine, not the server, limits the figures."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread just ended
            total += int(stat.read_text().split()[1])
    return total / 1e9


class LoadProcess:
    """One ``camera_whep_load.py`` child with its line protocol."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, api: str, viewers: int) -> LoadProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LOAD),
            api,
            "cam1",
            str(viewers),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def expect(self, word: str, limit_s: float = 240) -> object:
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), limit_s)).decode()
        got, _, data = line.strip().partition(" ")
        if got != word:
            raise RuntimeError(f"load process said {line.strip()!r}, expected {word!r}")
        return json.loads(data) if data else None

    async def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{word}\n".encode())
        await self.proc.stdin.drain()


def load_split(n: int) -> list[int]:
    """Viewers per load process: at most ``VIEWERS_PER_LOAD_PROCESS`` each, evenly spread."""
    procs = max(1, -(-n // VIEWERS_PER_LOAD_PROCESS))
    return [n // procs + (i < n % procs) for i in range(procs)]
