"""What a tour viewer actually sees: Chromium decodes the relay's WebRTC video, the test grabs
the <video> element into a canvas and compares it with the source clip (PSNR, luma; see
``infra/bench/camera_picture.py``).

The camera is the simulator deliberately writing two slices per frame with SPS/PPS before
every keyframe slice (``config-interval=-1``), as real cameras do: before the relay rebuilt
access units, the browser showed a green, smeared top half here (PSNR 13.8-23 dB measured).
The camera's microphone must reach the browser too, decoded and not silent.
"""

from __future__ import annotations

from typing import Any

from infra.bench.camera_picture import watch
from tests.support.browser_support import requires_chromium
from tests.support.camera_fixtures import require_pets

MIN_PSNR_DB = 28.0


@requires_chromium
async def test_multi_slice_camera_reaches_the_browser_clean_and_with_sound(browser: Any) -> None:
    result = await watch(browser, require_pets(), slices=2, grabs=6)
    psnrs = result["psnr_db"]
    assert len(psnrs) >= 6, "the browser never showed a picture"
    assert min(psnrs) >= MIN_PSNR_DB and result["corrupted"] == 0, psnrs
    # the camera's G.711 microphone (quiet pink noise) decoded by the browser: not silence
    audio = result["audio"]
    assert audio and audio["samples"] > 8000 and audio["energy"] > 0, audio
