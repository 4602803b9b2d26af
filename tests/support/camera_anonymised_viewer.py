"""What a WHEP viewer of the anonymised stream sees, compared with the camera's source video.

Used by ``camera_whep_scenario.py anonymised`` (inside the network namespace): an aiortc
viewer decodes frames from the API's relay; each is matched to the PETS source frame it
shows (least squared error on small grey copies, over the whole looping clip), then

* every annotated person tall enough for a 10 px head: the detail (mean absolute Laplacian)
  of the head as received over the head in the source, and, as the control, the same ratio
  for a patch of the same person's body (H.264 alone keeps most of the body's detail; a
  blurred head keeps little);
* PSNR of the received frame against the source outside every annotated person's upper
  part (what must come through untouched).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription

from edge.camera.blur_recall import gt_head, load_boxes

W, H = 640, 480
MIN_PERSON_PX = 70  # boxes at least this tall at 640x480 have heads of >= 10 px
SMALL = (160, 120)


async def _listen(track: Any, heard: list[float]) -> None:
    """Append each decoded audio frame's mean absolute sample value."""
    while True:
        frame = await track.recv()
        heard.append(float(np.abs(frame.to_ndarray().astype(np.float32)).mean()))


async def watch(
    api: str, camera: str, frames: int, warmup_s: float
) -> tuple[list[np.ndarray], list[float]]:
    """Decoded BGR frames of one WHEP viewer after ``warmup_s`` of playing, and the loudness
    of every audio frame it heard meanwhile."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    heard: list[float] = []
    listeners: list[asyncio.Task[None]] = []

    def on_track(track: Any) -> None:
        if track.kind == "audio":
            listeners.append(asyncio.create_task(_listen(track, heard)))
        elif not got.done():
            got.set_result(track)

    pc.on("track", on_track)
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        ticket = (await http.post(f"/api/v1/cameras/{camera}/ticket")).raise_for_status()
        res = await http.post(
            f"/api/v1/cameras/{camera}/whep",
            content=pc.localDescription.sdp,
            headers={
                "content-type": "application/sdp",
                "authorization": f"Bearer {ticket.json()['ticket']}",
            },
        )
        res.raise_for_status()
        await pc.setRemoteDescription(RTCSessionDescription(res.text, "answer"))
        track = await asyncio.wait_for(got, 30)
        out: list[np.ndarray] = []
        started = time.monotonic()
        try:
            while len(out) < frames:
                frame = await asyncio.wait_for(track.recv(), 30)
                if time.monotonic() - started >= warmup_s:
                    out.append(frame.to_ndarray(format="bgr24"))
        finally:
            for task in listeners:
                task.cancel()
            await http.delete(res.headers["location"])
            await pc.close()
    return out, heard


def _grey_small(img: np.ndarray) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), SMALL).astype(np.float32)


def _detail(img: np.ndarray) -> float:
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


def _crop(img: np.ndarray, r: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = r
    return img[y : y + h, x : x + w]


async def snapshots(api: str, camera: str, n: int, every_s: float = 3.2) -> list[np.ndarray]:
    """``n`` stills from the API's snapshot route, one per cache period."""
    stills = []
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        for i in range(n):
            if i:
                await asyncio.sleep(every_s)
            res = (await http.get(f"/api/v1/cameras/{camera}/snapshot")).raise_for_status()
            assert res.headers["content-type"] == "image/jpeg"
            stills.append(cv2.imdecode(np.frombuffer(res.content, np.uint8), cv2.IMREAD_COLOR))
    return stills


def evaluate(
    received: list[np.ndarray],
    video: Path,
    tracks: Path,
    masks: list[tuple[int, int, int, int]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """Match, then score heads, bodies and the background (``masks``: privacy-mask
    rectangles, filled on purpose, left out of the PSNR)."""
    cap = cv2.VideoCapture(str(video))
    small: list[np.ndarray] = []
    sw = sh = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        sh, sw = frame.shape[:2]
        small.append(_grey_small(cv2.resize(frame, (W, H))))
    cap.release()
    stack = np.stack(small)
    matches = []
    for img in received:
        err = ((stack - _grey_small(img)) ** 2).mean(axis=(1, 2))
        matches.append(int(err.argmin()))
    wanted = set(matches)
    sources: dict[int, np.ndarray] = {}
    cap = cv2.VideoCapture(str(video))
    index = 0
    while len(sources) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            sources[index] = cv2.resize(frame, (W, H))
        index += 1
    cap.release()
    boxes = load_boxes(tracks)
    sx, sy = W / sw, H / sh
    heads, bodies, psnr = [], [], []
    for img, idx in zip(received, matches, strict=True):
        src = sources[idx]
        outside = np.ones((H, W), bool)
        for mx, my, mw, mh in masks:
            outside[max(0, my - 2) : my + mh + 2, max(0, mx - 2) : mx + mw + 2] = False
        for bx, by, bw, bh in boxes.get(idx, []):
            x, y, w, h = bx * sx, by * sy, bw * sx, bh * sy
            pad = 12
            outside[
                max(0, round(y - pad)) : max(0, round(y + 0.45 * h + pad)),
                max(0, round(x - pad)) : max(0, round(x + w + pad)),
            ] = False
            if h < MIN_PERSON_PX or x < 0 or y < 0 or x + w > W or y + h > H:
                continue
            head = gt_head((x, y, w, h))
            body = (round(x + 0.25 * w), round(y + 0.4 * h), round(0.5 * w), round(0.2 * h))
            for rect, into in ((head, heads), (body, bodies)):
                into.append(_detail(_crop(img, rect)) / max(_detail(_crop(src, rect)), 1e-6))
        diff = (img.astype(np.float32) - src.astype(np.float32))[outside]
        psnr.append(float(10 * np.log10(255**2 / max(float((diff**2).mean()), 1e-9))))
    return {
        "frames": len(received),
        "matched": matches,
        "head_detail_ratio": heads,
        "body_detail_ratio": bodies,
        "psnr_outside_db": psnr,
    }
