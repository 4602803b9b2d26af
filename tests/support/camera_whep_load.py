"""A WHEP load process: N aiortc viewers of one camera, steered line by line over stdin.

``camera_whep_scenario.py`` runs one or more of these beside (never inside) the API process
it measures, so the server's CPU figure holds no viewer work and the viewers' work does not
hold up the server's event loop. A viewer decodes only its first frame -- that is the
picture a person would see, and it proves the H.264 passed through is decodable -- and
afterwards only receives: complete encoded frames still arrive (SRTP, RTP, jitter buffer)
and are counted, but are no longer handed to the decoder thread.

Usage: python camera_whep_load.py API_URL CAMERA VIEWERS

Protocol (stdout lines are ``<word> <json>``): prints ``ready``; on ``go`` joins every viewer
at once and prints ``joined {...}`` with per-viewer times; on ``mark`` starts a steady-state
window; on ``stop`` prints ``done {...}`` (frames per viewer since ``mark``, own CPU) and exits.
"""

from __future__ import annotations

import asyncio
import json
import queue
import resource
import sys
import time
from typing import Any

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription

JOIN_TIMEOUT_S = 120.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Viewer:
    """One recvonly peer connection that counts encoded frames at the receiver."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.pc.addTransceiver("video", direction="recvonly")
        self.decode = True
        self.frames = 0
        self.first_rtp: float | None = None
        self.session: str | None = None
        # aiortc hands every complete encoded frame to the decoder thread through this queue
        # (``None`` tells the thread to end, so that always goes through).
        frames_in: queue.Queue[Any] = self.pc.getReceivers()[0]._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        forward = frames_in.put

        def put(item: Any, *args: Any, **kwargs: Any) -> None:
            if item is not None:
                self.frames += 1
                if self.first_rtp is None:
                    self.first_rtp = time.monotonic()
            if item is None or self.decode:
                forward(item, *args, **kwargs)

        frames_in.put = put  # type: ignore[method-assign]

    async def join(self, http: httpx.AsyncClient, camera: str) -> dict[str, float]:
        """Offer, answer, first decoded frame; times from the offer POST in milliseconds."""
        got_track: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pc.on("track", lambda t: None if got_track.done() else got_track.set_result(t))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        started = time.monotonic()
        ticket = (await http.post(f"/api/v1/cameras/{camera}/ticket")).raise_for_status()
        res = await http.post(
            f"/api/v1/cameras/{camera}/whep",
            content=self.pc.localDescription.sdp,
            headers={
                "content-type": "application/sdp",
                "authorization": f"Bearer {ticket.json()['ticket']}",
            },
        )
        res.raise_for_status()
        answered = time.monotonic()
        self.session = res.headers["location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(res.text, "answer"))
        track = await asyncio.wait_for(got_track, JOIN_TIMEOUT_S)
        await asyncio.wait_for(track.recv(), JOIN_TIMEOUT_S)
        decoded = time.monotonic()
        self.decode = False
        assert self.first_rtp is not None  # a frame was decoded, so one was received
        return {
            "answer_ms": (answered - started) * 1000,
            "first_rtp_frame_ms": (self.first_rtp - started) * 1000,
            "first_frame_ms": (decoded - started) * 1000,
        }

    async def leave(self, http: httpx.AsyncClient) -> bool:
        """Stop watching; False when the server had already dropped this session."""
        ended = True
        if self.session is not None:
            res = await http.delete(self.session)
            ended = res.status_code == 200
            if res.status_code not in (200, 404):
                res.raise_for_status()
        await self.pc.close()
        return ended


async def main(api: str, camera: str, n: int) -> None:
    loop = asyncio.get_running_loop()

    async def command() -> str:
        line: str = await loop.run_in_executor(None, sys.stdin.readline)
        return line.strip()

    def say(word: str, data: object = None) -> None:
        print(word if data is None else f"{word} {json.dumps(data)}", flush=True)

    say("ready")
    if await command() != "go":
        return
    viewers = [Viewer() for _ in range(n)]
    async with httpx.AsyncClient(base_url=api, timeout=JOIN_TIMEOUT_S) as http:
        joined = await asyncio.gather(*(v.join(http, camera) for v in viewers))
        say("joined", joined)
        if await command() != "mark":
            return
        frames0, cpu0, wall0 = [v.frames for v in viewers], cpu_seconds(), time.monotonic()
        if await command() != "stop":
            return
        frames1, cpu1, wall1 = [v.frames for v in viewers], cpu_seconds(), time.monotonic()
        live = [await viewer.leave(http) for viewer in viewers]
    say(
        "done",
        {
            "frames": [b - a for a, b in zip(frames0, frames1, strict=True)],
            "cpu_s": cpu1 - cpu0,
            "wall_s": wall1 - wall0,
            "dropped_by_server": live.count(False),
        },
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
