"""The viewer's picture is anonymised at the edge: heads blurred, privacy masks filled where
the scene is after a PTZ move, the rest as the camera saw it, the camera's sound along;
the API's snapshots are stills of the same stream, blurred too.

Simulated PTZ camera (PETS 2009 video) -> edge agent (YOLOX-nano person detector, heads
blurred, H.264 encoded once, RTSP) -> API relay -> WHEP -> an aiortc viewer, all real
processes in a private network namespace (see camera_netns.py). The viewer's decoded
frames are matched to the source frames and compared there
(tests/support/camera_anonymised_viewer.py).
"""

from __future__ import annotations

import statistics

import pytest

from tests.support.camera_fixtures import require_person_model, require_pets
from tests.support.camera_netns import run_scenario


@pytest.mark.slow
async def test_viewer_gets_blurred_heads_and_an_untouched_background() -> None:
    require_pets()
    require_person_model()
    result = await run_scenario("anonymised", viewers=20, limit_s=300)
    heads, bodies = result["head_detail_ratio"], result["body_detail_ratio"]
    psnr = result["psnr_outside_db"]
    print(
        f"heads {len(heads)}: detail median {statistics.median(heads):.2f}; "
        f"bodies median {statistics.median(bodies):.2f}; PSNR outside min {min(psnr):.1f} dB; "
        f"audio frames {len(result['audio_levels'])}"
    )
    assert result["frames"] == 20 and len(heads) >= 15
    # the bodies (control: same encoder, same people) keep their detail ...
    assert statistics.median(bodies) >= 0.6
    # ... the heads lose it (measured: median 0.28, worst 0.48 of 46; unblurred ~1)
    assert statistics.median(heads) <= 0.45
    assert sum(r <= 0.6 for r in heads) >= 0.9 * len(heads)
    # everything but the people's upper parts comes through as the camera saw it
    assert min(psnr) >= 30.0
    # moved off every preset, the entrance preset's privacy mask is filled where that part
    # of the scene now is (the agent follows the ONVIF position), not where it was
    assert max(result["mask_after_move"]) < 12, result["mask_after_move"]
    assert min(result["mask_before_move_spot"]) > 40, result["mask_before_move_spot"]
    # snapshots are stills of that same anonymised stream: heads blurred there too
    stills = result["snapshot_head_detail_ratio"]
    assert len(stills) >= 2 and statistics.median(stills) <= 0.45, stills
    # the camera's microphone comes with the anonymised video (G.711 via the agent)
    levels = result["audio_levels"]
    assert len(levels) >= 20 and max(levels) > 0, levels[:10]
