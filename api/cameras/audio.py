"""The camera's microphone to every viewer, with no per-viewer work.

PTZ audio cameras offer G.711 (PCMU/PCMA) over RTSP, which every browser's WebRTC stack
decodes, so the relay forwards the camera's packets as they are; AAC, which browsers do not
take over WebRTC, is transcoded to Opus once here (``api.cameras.opus``) and the same Opus
packets go to every listener. The camera's audio is read
from the moment the pull opens, whether anyone listens or not: aiortc's player queues every
demuxed packet for its track, and an unread track's queue grows without bound.
Each listener has a short bounded queue (oldest dropped: late audio is useless).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from api.cameras.opus import TRANSCODED, AacToOpus

if TYPE_CHECKING:
    from av.stream import Stream

log = logging.getLogger(__name__)
if TYPE_CHECKING:  # PyAV's Packet is generic only in its stubs
    Packet = av.Packet[Stream]
#: aiortc/ffmpeg codec names the relay forwards, with their WebRTC MIME type.
PASSTHROUGH = {"pcm_mulaw": "audio/PCMU", "pcm_alaw": "audio/PCMA", "opus": "audio/opus"}
LISTENER_QUEUE = 25  # 0.5 s of 20 ms packets
CODEC_WAIT_S = 2.0


class ListenerTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, hub: AudioHub) -> None:
        super().__init__()
        self._hub = hub
        self._queue: asyncio.Queue[Packet | None] = asyncio.Queue(LISTENER_QUEUE)
        self.dropped = 0

    def offer(self, packet: Packet | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(packet)

    async def recv(self) -> Packet:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        super().stop()
        self._hub.listeners.discard(self)


class AudioHub:
    """Reads the camera's audio track continuously and copies packets to listeners."""

    def __init__(self, source: MediaStreamTrack) -> None:
        self._source = source
        self.listeners: set[ListenerTrack] = set()
        self.codec: str | None = None
        self.packets = 0
        self.transcoder: AacToOpus | None = None
        self._known = asyncio.Event()
        self._task = asyncio.create_task(self._pump())

    async def mime_type(self) -> str | None:
        """The WebRTC MIME type to negotiate, once the first packet told the codec."""
        try:
            await asyncio.wait_for(self._known.wait(), CODEC_WAIT_S)
        except TimeoutError:
            return None
        if self.codec in TRANSCODED:
            return "audio/opus"
        return PASSTHROUGH.get(self.codec or "")

    def subscribe(self) -> ListenerTrack:
        track = ListenerTrack(self)
        self.listeners.add(track)
        return track

    async def _pump(self) -> None:
        try:
            while True:
                packet = await self._source.recv()
                if not isinstance(packet, av.Packet):
                    continue
                if self.codec is None:
                    self.codec = packet.stream.codec_context.name
                    if self.codec in TRANSCODED:
                        self.transcoder = AacToOpus(packet.stream.codec_context)
                    self._known.set()
                self.packets += 1
                out = [packet] if self.transcoder is None else self.transcoder.transcode(packet)
                for item in out:
                    for track in list(self.listeners):
                        track.offer(item)
        except MediaStreamError:
            pass
        finally:
            for track in list(self.listeners):
                track.offer(None)

    def stop(self) -> None:
        self._task.cancel()
        for track in list(self.listeners):
            track.offer(None)
