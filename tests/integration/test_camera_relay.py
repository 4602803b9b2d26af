"""Access-unit assembly on synthetic NAL units (the pixel-level proof is the browser test
``tests/browser/test_whep_picture.py``): what a two-slice camera with SPS/PPS repeated before
every keyframe slice hands the relay, and what the relay must forward."""

from __future__ import annotations

import av

from api.cameras.relay import AccessUnitAssembler, split_nals

SPS, PPS = b"\x67\x42\xc0\x1e\xd9", b"\x68\xce\x3c\x80"
IDR_TOP, IDR_BOTTOM = b"\x65\x88\x84\x21", b"\x65\x40\x84\x21"  # first_mb_in_slice 0 / 1
P_TOP, P_BOTTOM = b"\x41\x9a\x21", b"\x41\x40\x9a\x21"


def packet(pts: int, *nals: bytes) -> av.Packet:
    pkt = av.Packet(b"".join(b"\x00\x00\x00\x01" + n for n in nals))
    pkt.pts = pts
    return pkt


def test_two_slice_frames_with_repeated_parameter_sets_become_one_unit_each() -> None:
    asm = AccessUnitAssembler()
    demuxed = [  # what ffmpeg's parser emits: each keyframe as two "frames", same pts
        packet(0, SPS, PPS, IDR_TOP),
        packet(0, SPS, PPS, IDR_BOTTOM),
        packet(9000, P_TOP),
        packet(9000, P_BOTTOM),
        packet(18000, SPS, PPS, IDR_TOP),
    ]
    units = [u for p in demuxed for u in asm.push(p)]
    assert [u.pts for u in units] == [0, 9000]
    key, delta = units
    assert key.keyframe and key.nals == [SPS, PPS, IDR_TOP, IDR_BOTTOM]  # repeats dropped
    assert not delta.keyframe and delta.nals == [P_TOP, P_BOTTOM]
    assert split_nals(bytes(key.packet())) == [SPS, PPS, IDR_TOP, IDR_BOTTOM]


def test_keyframe_without_parameter_sets_gets_the_last_ones_seen() -> None:
    asm = AccessUnitAssembler()
    units = [
        u
        for p in (
            packet(0, SPS, PPS, IDR_TOP),
            packet(1, P_TOP),
            packet(2, IDR_TOP),  # camera sends SPS/PPS only once (out of band afterwards)
            packet(3, P_TOP),
        )
        for u in asm.push(p)
    ]
    assert [u.nals for u in units] == [[SPS, PPS, IDR_TOP], [P_TOP], [SPS, PPS, IDR_TOP]]
