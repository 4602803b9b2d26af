"""What a tour viewer actually sees: Chromium decodes the relay's WebRTC video, the test grabs
the <video> element into a canvas and compares it with the source clip (PSNR, luma).

The camera is the simulator deliberately writing two slices per frame with SPS/PPS before
every keyframe slice (``config-interval=-1``), as real cameras do: before the relay rebuilt
access units, the browser showed a green, smeared top half here (PSNR 13.8-23 dB measured).
The camera's microphone must reach the browser too, decoded and not silent.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import cv2
import numpy as np
from browser_support import requires_chromium
from camera_fixtures import require_pets

from api.cameras.whep import CameraFeed
from edge.camera_sim.rtsp_child import RtspChild

GRAB_SIZE = (320, 240)  # compared at half size: enough for corruption, cheap to search
MIN_PSNR_DB = 28.0

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


def source_frames(path: str) -> np.ndarray:
    """Every frame of the clip as the simulator streams it (full crop, 640x480), in luma."""
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        small = cv2.resize(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA), GRAB_SIZE)
        frames.append(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    cap.release()
    return np.stack(frames).astype(np.float32)


def best_psnr(grab: np.ndarray, source: np.ndarray) -> float:
    """PSNR against the best-matching source frame (the clip loops; which frame is on screen
    is unknown)."""
    luma = cv2.cvtColor(
        cv2.resize(grab, GRAB_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
    )
    mse = ((source - luma.astype(np.float32)[None]) ** 2).mean(axis=(1, 2))
    return float(10 * np.log10(255.0**2 / max(float(mse.min()), 1e-6)))


@requires_chromium
async def test_multi_slice_camera_reaches_the_browser_clean_and_with_sound(browser: Any) -> None:
    video = require_pets()
    source = source_frames(str(video))
    camera = RtspChild(video, 768, 576, 10, host="127.0.0.1", slices=2)
    await camera.start()
    feed = CameraFeed(camera.url)
    try:
        page = await browser.new_page()
        await page.set_content('<video id="v" autoplay muted playsinline></video>')
        offer = await page.evaluate(VIEWER_JS)
        answer, _session = await feed.answer(offer)
        await page.evaluate(
            "(sdp) => window.tpPc.setRemoteDescription({type: 'answer', sdp})", answer
        )
        psnrs: list[float] = []
        for _ in range(120):
            if len(psnrs) >= 6:
                break
            await asyncio.sleep(0.5)
            url = await page.evaluate(GRAB_JS)
            if url is None:
                continue
            png = base64.b64decode(url.split(",", 1)[1])
            grab = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
            psnrs.append(best_psnr(grab, source))
        assert len(psnrs) >= 6, "the browser never showed a picture"
        assert min(psnrs) >= MIN_PSNR_DB, psnrs
        # the camera's G.711 microphone (quiet pink noise) decoded by the browser: not silence
        await page.click("#v")
        audio = await page.evaluate(AUDIO_JS)
        assert audio and audio["samples"] > 8000 and audio["energy"] > 0, audio
    finally:
        await feed.close()
        await camera.stop()
