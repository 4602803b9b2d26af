"""A JPEG still from a keyframe of the relayed (already anonymised) stream.

Why decode here rather than ask the camera for a snapshot: the camera's own snapshot is
its raw picture, which would have to cross to the centre and be anonymised there, a second
and weaker privacy path. The edge agent's stream is blurred and masked before it leaves the
site; a still taken from it shows exactly what tour viewers see.
"""

from __future__ import annotations

import io

import av

from api.cameras.relay import AccessUnit

JPEG_QUALITY = 85


def keyframe_jpeg(unit: AccessUnit) -> bytes:
    """Decode one H.264 keyframe (with its SPS/PPS) and encode it as JPEG."""
    if not unit.keyframe:
        raise ValueError("not a keyframe")
    decoder = av.CodecContext.create("h264", "r")
    frames = list(decoder.decode(unit.packet()))
    frames += list(decoder.decode(None))  # flush: a lone picture may wait in the decoder
    if not frames:
        raise ValueError("the keyframe did not decode")
    out = io.BytesIO()
    image = frames[-1].to_image()  # type: ignore[no-untyped-call]  # PyAV: PIL image, untyped
    image.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
