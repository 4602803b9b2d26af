"""AAC from the camera to Opus for WebRTC, once per camera (never per viewer).

Browsers' WebRTC stacks take Opus or G.711 but not AAC, which many PTZ cameras send. Left
to aiortc, every viewer's sender would run its own Opus encoder on decoded frames (N
encoders for N viewers); instead the camera's hub decodes and encodes here once and every
listener gets the same encoded Opus packets, which aiortc only packetises.
"""

from __future__ import annotations

import fractions
from typing import TYPE_CHECKING

import av
from aiortc.contrib.media import MediaPlayer, PlayerStreamTrack

if TYPE_CHECKING:
    from av.audio.codeccontext import AudioCodecContext
    from av.stream import Stream

    Packet = av.Packet[Stream]

OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms, what browsers expect
OPUS_TIME_BASE = fractions.Fraction(1, OPUS_RATE)
OPUS_BITRATE = 32_000  # a camera microphone: speech-grade is plenty
#: Camera codecs browsers do not take over WebRTC, transcoded here.
TRANSCODED = {"aac"}


class AacToOpus:
    """Stateful transcoder for one camera's AAC stream (decoder and encoder keep history)."""

    def __init__(self, source: AudioCodecContext) -> None:
        """``source``: the camera stream's codec parameters (AudioSpecificConfig in extradata)."""
        decoder: AudioCodecContext = av.CodecContext.create(source.name, "r")  # type: ignore[assignment]
        decoder.extradata = source.extradata
        decoder.sample_rate = source.sample_rate
        decoder.layout = source.layout
        self._decoder = decoder
        self._resampler = av.AudioResampler(
            format="s16", layout="stereo", rate=OPUS_RATE, frame_size=OPUS_FRAME
        )
        encoder: AudioCodecContext = av.CodecContext.create("libopus", "w")
        encoder.bit_rate = OPUS_BITRATE
        encoder.format = "s16"
        encoder.layout = "stereo"
        encoder.sample_rate = OPUS_RATE
        encoder.time_base = OPUS_TIME_BASE
        encoder.options = {"application": "voip"}
        self._encoder = encoder
        self._pts = 0
        self.errors = 0

    def transcode(self, packet: Packet) -> list[Packet]:
        """Opus packets (20 ms each, pts in 1/48000) for one AAC packet; a corrupt packet
        yields none and is counted (the stream goes on: the next packet decodes)."""
        out: list[Packet] = []
        try:
            for frame in self._decoder.decode(packet):
                frame.pts = None  # the resampler restamps; camera clocks jump on reconnects
                for chunk in self._resampler.resample(frame):
                    chunk.pts, chunk.time_base = self._pts, OPUS_TIME_BASE
                    self._pts += chunk.samples
                    out.extend(self._encoder.encode(chunk))
        except av.FFmpegError:
            self.errors += 1
            return []
        for opus in out:
            opus.time_base = OPUS_TIME_BASE
        return out


def open_camera(url: str, options: dict[str, str]) -> MediaPlayer:
    """aiortc's player for the camera's RTSP pull, with its AAC audio kept.

    In pass-through mode (``decode=False``) aiortc's player only keeps audio it can send
    as is (Opus, G.711) and drops an AAC stream; the camera's sound would never reach the
    hub. So an AAC stream is attached here as the player's audio track, before its demux
    thread starts (name-mangled attributes of aiortc 1.x, checked by the AAC WHEP test).
    """
    player = MediaPlayer(url, decode=False, options=options)
    if player.audio is None:
        private = vars(player)
        streams = private["_MediaPlayer__container"].streams.audio
        aac = [s for s in streams if s.codec_context.name in TRANSCODED]
        if aac:
            private["_MediaPlayer__audio"] = PlayerStreamTrack(player, kind="audio")
            private["_MediaPlayer__streams"].append(aac[0])
    return player
