"""WebRTC scenario run INSIDE a private network namespace (see ``camera_netns.run_in_netns``).

aioice never offers 127.0.0.1 as an ICE candidate, so WebRTC between two local peers needs
another loopback address. The namespace has its own ``lo`` with 127.0.0.2 added; everything
(simulated camera, the API, the viewers) runs inside it and nothing touches the host network.

Usage: python camera_whep_scenario.py MODE VIEWERS OUT_JSON
  MODE aiortc  -- VIEWERS aiortc clients; report first-frame times and frames received
  MODE browser -- Debian chromium plays /tours/<camera>, takes the lease and pans
Prints nothing useful itself; the JSON file is the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn
import yaml
from aiortc import RTCPeerConnection, RTCSessionDescription
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.cameras import router as cameras
from api.errors import install_error_handlers
from device_configs.loader import load_device_configs
from edge.camera_sim.ptz import Position
from edge.camera_sim.rtsp_child import free_port
from edge.camera_sim.server import CameraSim
from infra.settings import Settings

VIDEO = Path(__file__).resolve().parents[2] / "shared/data/video/pets2009_s2l1/vtest.avi"
STEADY_WINDOW_S = 5.0
CHROMIUM = os.environ.get("TP_CHROMIUM", "/usr/bin/chromium")


def write_configs(root: Path, onvif_port: int) -> None:
    (root / "sites.yaml").write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "id": "cu-chi-tunnels-ben-dinh",
                        "name_vi": "Địa đạo Củ Chi",
                        "name_en": "Cu Chi",
                        "kind": "rural",
                        "lat": 11.06,
                        "lon": 106.5,
                        "capacity_persons": 3000,
                    }
                ]
            }
        )
    )
    (root / "cameras.yaml").write_text(
        yaml.safe_dump(
            {
                "cameras": [
                    {
                        "id": "cam1",
                        "site": "cu-chi-tunnels-ben-dinh",
                        "name": "Cu Chi camera",
                        "setup": {
                            "onvif": {
                                "host": "127.0.0.1",
                                "port": onvif_port,
                                "credentials": {
                                    "username_env": "TP_CAMERA_USER",
                                    "password_env": "TP_CAMERA_PASSWORD",
                                },
                            },
                            "presets": [
                                {"name": "wide"},
                                {"name": "entrance", "pan": -0.8, "zoom": 0.5},
                            ],
                            "tours": [
                                {
                                    "name": "t",
                                    "steps": [
                                        {
                                            "preset": "wide",
                                            "dwell_s": 30,
                                            "narration_vi": "Lối vào địa đạo",
                                            "narration_en": "The tunnel entrance",
                                        }
                                    ],
                                }
                            ],
                        },
                    }
                ]
            }
        )
    )


async def wait_live(api: str) -> None:
    """The API opens the camera pull at start-up; viewers are timed from then on."""
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(600):
            status = (await http.get(f"{api}/api/v1/cameras/cam1/status")).json()
            if status["live"]:
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"camera feed never went live: {status}")


async def aiortc_viewers(api: str, n: int) -> dict[str, object]:
    async def one() -> tuple[float, int, RTCPeerConnection]:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        got_track: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        pc.on("track", lambda t: got_track.done() or got_track.set_result(t))
        await pc.setLocalDescription(await pc.createOffer())
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=60) as http:
            res = await http.post(
                f"{api}/api/v1/cameras/cam1/whep",
                content=pc.localDescription.sdp,
                headers={"content-type": "application/sdp"},
            )
        res.raise_for_status()
        await pc.setRemoteDescription(RTCSessionDescription(res.text, "answer"))
        track = await asyncio.wait_for(got_track, 60)
        await asyncio.wait_for(track.recv(), 60)  # type: ignore[attr-defined]
        first = (time.monotonic() - started) * 1000
        frames = 1
        for _ in range(5):
            await asyncio.wait_for(track.recv(), 30)  # type: ignore[attr-defined]
            frames += 1
        return first, frames, pc

    results = await asyncio.gather(*(one() for _ in range(n)))
    # Steady state: every viewer keeps receiving; CPU of this whole process (API, relay,
    # and the viewers' own H.264 decoding) over a fixed window, so the per-viewer server cost
    # derived from it is an upper bound.
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    received = await asyncio.gather(*(drain(pc, STEADY_WINDOW_S) for _, _, pc in results))
    cpu1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    for _, _, pc in results:
        await pc.close()
    return {
        "first_frame_ms": [r[0] for r in results],
        "frames": [r[1] for r in results],
        "steady_frames": received,
        "steady_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "steady_wall_s": wall1 - wall0,
    }


async def drain(pc: RTCPeerConnection, seconds: float) -> int:
    track = next(r.track for r in pc.getReceivers() if r.track.kind == "video")
    frames, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(track.recv(), 2)
            frames += 1
    return frames


async def browser(api: str, sim: CameraSim) -> dict[str, object]:
    from playwright.async_api import async_playwright

    out: dict[str, object] = {}
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--allow-loopback-in-peer-connection",
                "--autoplay-policy=no-user-gesture-required",
                # host candidates as plain addresses: mDNS names cannot resolve in the namespace
                "--disable-features=WebRtcHideLocalIpsWithMdns",
            ],
        )
        try:
            page = await b.new_page()
            await page.goto(f"{api}/tours/cam1")
            samples = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                len(samples) < 2 or samples[-1] <= samples[0] or samples[-1] < 10
            ):
                samples.append(await page.evaluate("window.tpFramesDecoded()"))
                await asyncio.sleep(1)
            out["frames_decoded"] = samples
            out["state"] = await page.inner_text("#state")
            out["narration"] = await page.inner_text("#narration")
            pan_before = sim.head.position().pan
            await page.click("#take")
            await page.wait_for_selector("#controls:not([hidden])", timeout=15000)
            await page.click("button[aria-label=right]")
            out["lease_text"] = await page.inner_text("#lease")
            out["pan_before"] = pan_before
        finally:
            await b.close()
    return out


async def start_agent(mqtt_port: int, tmp: Path) -> tuple[object, object, asyncio.Event, object]:
    """A private Mosquitto in the namespace and the real camera agent behind it."""
    from edge.camera.agent import CameraAgent
    from edge.link import LinkIdentity, MqttLink, MqttLinkConfig
    from schemas.topics import DeviceKind

    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n")
    broker = await asyncio.create_subprocess_exec(
        "/usr/sbin/mosquitto",
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)
    camera = load_device_configs(tmp).cameras[0]
    link = MqttLink(
        MqttLinkConfig(port=mqtt_port, outbox_path=tmp / "outbox.sqlite"),
        LinkIdentity(camera.site, camera.id, DeviceKind.CAMERA),
    )
    link.start()
    agent = CameraAgent(camera, ("admin", "tourpulse-test"), link, "127.0.0.1", mqtt_port)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    return broker, link, stop, task


async def main(mode: str, viewers: int, out_path: Path) -> None:
    os.environ.setdefault("TP_CAMERA_USER", "admin")
    os.environ.setdefault("TP_CAMERA_PASSWORD", "tourpulse-test")
    sim = CameraSim(
        VIDEO,
        username="admin",
        password="tourpulse-test",
        onvif_port=free_port(),
        presets={"wide": Position(), "entrance": Position(-0.8, 0, 0.5)},
    )
    await sim.start()
    tmp = Path(tempfile.mkdtemp())
    write_configs(tmp, sim.onvif_port)
    settings = Settings(device_configs=tmp, mqtt_port=free_port())
    agent = await start_agent(settings.mqtt_port, tmp) if mode == "browser" else None
    app = FastAPI(lifespan=cameras.lifespan)
    app.state.settings = settings
    app.state.device_configs = load_device_configs(tmp)
    install_error_handlers(app)
    app.include_router(cameras.router)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    for _ in range(1200):  # uvicorn has no "started" event to await
        if server.started:
            break
        await asyncio.sleep(0.05)
    api = f"http://127.0.0.1:{port}"
    try:
        await wait_live(api)
        result = await (aiortc_viewers(api, viewers) if mode == "aiortc" else browser(api, sim))
        if mode == "browser":  # the move went API -> MQTT -> agent -> ONVIF -> simulator
            for _ in range(150):
                if abs(sim.head.position().pan - float(result["pan_before"])) > 0.05:
                    break
                await asyncio.sleep(0.1)
            result["pan_after"] = sim.head.position().pan
    except Exception as exc:  # report as data: the outer test shows it
        result = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        server.should_exit = True
        await serving
        if agent is not None:
            broker, link, stop, task = agent
            stop.set()
            await asyncio.wait_for(task, 60)  # type: ignore[arg-type]
            link.stop()  # type: ignore[attr-defined]
            broker.terminate()  # type: ignore[attr-defined]
            await broker.wait()  # type: ignore[attr-defined]
        await sim.close()
    await asyncio.to_thread(out_path.write_text, json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
