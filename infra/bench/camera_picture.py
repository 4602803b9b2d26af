"""What a tour viewer sees, measured in Debian's Chromium: picture fidelity and sound.

A simulated camera (optionally writing several slices per frame, SPS/PPS before every
keyframe slice, as real cameras do) feeds the relay (``CameraFeed``); Chromium negotiates
WHEP-style SDP with it, the <video> element is grabbed into a canvas at intervals and each
grab is compared with the best-matching frame of the source clip (luma PSNR at 320x240; the
clip loops, so which frame is on screen is found by search). Used by the browser test and
by ``tourpulse bench camera``.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from api.cameras.whep import CameraFeed
from edge.camera_sim.rtsp_child import RtspChild

GRAB_SIZE = (320, 240)
#: A grab this far from every source frame is a corrupted picture (clean ones measure 30+).
CORRUPT_BELOW_DB = 25.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--allow-loopback-in-peer-connection",
]

VIEWER_JS = """
async () => {
  const pc = new RTCPeerConnection();
  window.tpPc = pc;
  pc.addTransceiver('video', {direction: 'recvonly'});
  pc.addTransceiver('audio', {direction: 'recvonly'});
  const stream = new MediaStream();
  pc.ontrack = (e) => {
    stream.addTrack(e.track);
    document.getElementById('v').srcObject = stream;
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => {
    if (pc.iceGatheringState === 'complete') return ok();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && ok();
    setTimeout(ok, 3000);
  });
  return pc.localDescription.sdp;
}
"""
AUDIO_JS = """
async () => {
  const v = document.getElementById('v');
  v.muted = false;  // after a click: the browser plays (and meters) the sound
  await new Promise((ok) => setTimeout(ok, 1500));
  let audio = null;
  (await window.tpPc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') audio = r;
  });
  return audio && {samples: audio.totalSamplesReceived, energy: audio.totalAudioEnergy};
}
"""
GRAB_JS = """
() => {
  const v = document.getElementById('v');
  if (!v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext('2d').drawImage(v, 0, 0);
  return c.toDataURL('image/png');
}
"""


def source_frames(path: Path) -> np.ndarray:
    """Every frame of the clip as the simulator streams it (full crop, 640x480), in luma."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        full = cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(cv2.resize(full, GRAB_SIZE), cv2.COLOR_BGR2GRAY))
    cap.release()
    return np.stack(frames).astype(np.float32)


def best_psnr(grab: np.ndarray, source: np.ndarray) -> float:
    """PSNR against the best-matching source frame."""
    small = cv2.resize(grab, GRAB_SIZE, interpolation=cv2.INTER_AREA)
    luma = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mse = ((source - luma[None]) ** 2).mean(axis=(1, 2))
    return float(10 * np.log10(255.0**2 / max(float(mse.min()), 1e-6)))


async def watch(
    browser: Any, video: Path, *, slices: int, grabs: int, audio: str = "pcmu"
) -> dict[str, Any]:
    """Play the simulated camera (microphone codec ``audio``) through the relay in
    ``browser``; PSNR of ``grabs`` canvas grabs (0.5 s apart) and the decoded audio's sample
    count and energy."""
    source = await asyncio.to_thread(source_frames, video)
    camera = RtspChild(video, 768, 576, 10, host="127.0.0.1", slices=slices, audio=audio)
    await camera.start()
    feed = CameraFeed(camera.url)
    try:
        page = await browser.new_page()
        await page.set_content('<video id="v" autoplay muted playsinline></video>')
        answer, _session = await feed.answer(await page.evaluate(VIEWER_JS))
        await page.evaluate(
            "(sdp) => window.tpPc.setRemoteDescription({type: 'answer', sdp})", answer
        )
        psnrs: list[float] = []
        for _ in range(120):
            if len(psnrs) >= grabs:
                break
            await asyncio.sleep(0.5)
            url = await page.evaluate(GRAB_JS)
            if url is None:
                continue
            png = base64.b64decode(url.split(",", 1)[1])
            grab = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
            if grab is not None:
                psnrs.append(best_psnr(grab, source))
        await page.click("#v")
        audio = await page.evaluate(AUDIO_JS)
        return {
            "psnr_db": psnrs,
            "corrupted": sum(1 for p in psnrs if p < CORRUPT_BELOW_DB),
            "audio": audio,
        }
    finally:
        await feed.close()
        await camera.stop()


async def measure(video: Path, chromium: str, *, slices: int, grabs: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            seen = await watch(browser, video, slices=slices, grabs=grabs)
            aac = await watch(browser, video, slices=1, grabs=2, audio="aac")
            seen["audio"] = {"pcmu": seen["audio"], "aac": aac["audio"]}
            return seen
        finally:
            await browser.close()
