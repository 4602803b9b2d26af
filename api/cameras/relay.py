"""Per-camera H.264 fan-out: whole access units, a cached GOP for joiners, bounded queues.

Why not ``MediaRelay`` alone: the RTSP demuxer hands out one packet per *parsed* frame, and
a camera that writes several slices per frame and repeats SPS/PPS before each keyframe slice
(x264 with sliced threads + ``rtph264pay config-interval=-1``, and many real cameras) comes
out as two "frames" with the same timestamp. aiortc then marks each as a complete frame, and
the browser shows half a picture over a green one. ``AccessUnitAssembler`` rebuilds one
packet per access unit (H.264 7.4.1.2.3); ``VideoHub`` keeps the current GOP so a new viewer,
or one that reports picture loss (PLI), decodes a clean picture at once instead of garbage
or a wait for the camera's next keyframe. Every queue is bounded: a viewer that cannot keep
up loses whole GOPs (it resumes at the next keyframe), never random frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import re
import time
from typing import TYPE_CHECKING

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

if TYPE_CHECKING:
    from av.stream import Stream

log = logging.getLogger(__name__)
START_CODE = b"\x00\x00\x00\x01"
_SPLIT = re.compile(b"\x00\x00\x01")
NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
VCL = (NAL_SLICE, NAL_IDR)
#: Non-VCL NAL types that open a new access unit when they follow a slice.
AU_OPENERS = (NAL_SEI, NAL_SPS, NAL_PPS, 14, 15, 16, 17, 18)
#: A viewer's backlog: 2 s at 25 fps. Past this it is too late for live video anyway.
VIEWER_QUEUE = 50
#: A viewer's picture-loss reports replay the GOP at most this often (PLI storms at start-up
#: or on a lossy link would otherwise resend it many times over).
RESYNC_EVERY_S = 1.0
#: The longest GOP cached for joiners (a camera with a 10 s keyframe interval at 30 fps).
MAX_GOP = 300
if TYPE_CHECKING:  # PyAV's Packet is generic only in its stubs
    Packet = av.Packet[Stream]


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B buffer (start codes removed, trailing zero bytes kept off)."""
    return [n.rstrip(b"\x00") for n in _SPLIT.split(data) if n.strip(b"\x00")]


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def first_mb_is_zero(nal: bytes) -> bool:
    """``first_mb_in_slice == 0``: its ue(v) code is the single bit '1' right after the header."""
    return len(nal) > 1 and bool(nal[1] & 0x80)


class AccessUnit:
    """One coded picture with what precedes it (AUD, SPS, PPS, SEI)."""

    def __init__(self, pts: int | None, time_base: fractions.Fraction | None) -> None:
        self.nals: list[bytes] = []
        self.pts, self.time_base = pts, time_base
        self.has_vcl = False

    @property
    def keyframe(self) -> bool:
        return any(nal_type(n) == NAL_IDR for n in self.nals)

    def packet(self, pts: int | None = None) -> Packet:
        pkt = av.Packet(b"".join(START_CODE + n for n in self.nals))
        pkt.pts = pkt.dts = self.pts if pts is None else pts
        if self.time_base is not None:
            pkt.time_base = self.time_base
        return pkt


class AccessUnitAssembler:
    """Demuxed packets in, complete access units out (one per coded picture).

    A unit is known complete when the next one starts, so this adds one frame interval of
    latency; in exchange a multi-slice frame is sent as one frame. SPS/PPS/SEI repeated
    between the slices of one picture are dropped (they are copies of the unit's own)."""

    def __init__(self) -> None:
        self._current: AccessUnit | None = None
        self._pending: list[bytes] = []  # non-VCL after a slice: next unit's, or a repeat
        self._params: dict[int, bytes] = {}  # last SPS/PPS seen, for keyframes sent without

    def push(self, packet: Packet) -> list[AccessUnit]:
        done: list[AccessUnit] = []
        for nal in split_nals(bytes(packet)):
            kind = nal_type(nal)
            if kind in (NAL_SPS, NAL_PPS):
                self._params[kind] = nal
            cur = self._current
            if kind == NAL_AUD or cur is None:
                if cur is not None and cur.has_vcl:
                    done.append(self._finish())
                self._current = cur = AccessUnit(packet.pts, packet.time_base)
                cur.nals.extend(self._pending)
                self._pending = []
                cur.nals.append(nal)
                cur.has_vcl = kind in VCL
            elif kind in VCL:
                if cur.has_vcl and first_mb_is_zero(nal):
                    done.append(self._finish())
                    self._current = cur = AccessUnit(packet.pts, packet.time_base)
                    cur.nals.extend(self._pending)
                elif not cur.has_vcl:
                    cur.nals.extend(self._pending)
                    cur.pts, cur.time_base = packet.pts, packet.time_base
                self._pending = []  # between two slices of one picture: repeats, dropped
                cur.nals.append(nal)
                cur.has_vcl = True
            elif cur.has_vcl and kind in AU_OPENERS:
                self._pending.append(nal)
            else:
                cur.nals.append(nal)
        return done

    def _finish(self) -> AccessUnit:
        unit = self._current
        assert unit is not None
        if unit.keyframe and not any(nal_type(n) == NAL_SPS for n in unit.nals):
            unit.nals[:0] = [self._params[k] for k in (NAL_SPS, NAL_PPS) if k in self._params]
        self._current = None
        return unit


class ViewerTrack(MediaStreamTrack):
    """One viewer's video: a bounded queue of whole access units, fed by the hub."""

    kind = "video"

    def __init__(self, hub: VideoHub) -> None:
        super().__init__()
        self._hub = hub
        self._queue: asyncio.Queue[Packet | None] = asyncio.Queue(VIEWER_QUEUE)
        self._synced = False  # until a keyframe is queued, deltas would decode as garbage
        self.last_pts: int | None = None
        self.dropped = 0
        self._resynced_at = -RESYNC_EVERY_S

    def offer(self, unit: AccessUnit, pts: int | None = None) -> None:
        if not self._synced and not unit.keyframe:
            return
        if self._queue.full():  # too slow: drop the backlog and resume at a keyframe
            self.dropped += self._queue.qsize()
            self._drain()
            self._synced = False
            if not unit.keyframe:
                return
        self._synced = True
        packet = unit.packet(pts)
        self.last_pts = packet.pts
        self._queue.put_nowait(packet)

    def resync(self) -> None:
        """Picture loss at the viewer (PLI/FIR): replay the cached GOP right now."""
        now = time.monotonic()
        if now - self._resynced_at < RESYNC_EVERY_S:
            return
        self._resynced_at = now
        self._drain()
        self._synced = False
        self._hub.prime(self)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def end(self) -> None:
        self._drain()
        self._queue.put_nowait(None)

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
        self._hub.unsubscribe(self)


class VideoHub:
    """Reads one camera track, assembles access units, caches the GOP, fans out."""

    def __init__(self, source: MediaStreamTrack) -> None:
        self._source = source
        self._assembler = AccessUnitAssembler()
        self._gop: list[AccessUnit] = []
        self._viewers: set[ViewerTrack] = set()
        self._task: asyncio.Task[None] | None = None
        self._keyframe_seen = asyncio.Event()
        self.units = 0

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def subscribe(self) -> ViewerTrack:
        if self._task is None:
            self._task = asyncio.create_task(self._pump())
        track = ViewerTrack(self)
        self._viewers.add(track)
        self.prime(track)
        return track

    async def keyframe(self, timeout: float) -> AccessUnit | None:  # noqa: ASYNC109
        """The latest cached keyframe, reading the camera if no viewer does yet; waits up to
        ``timeout`` s for one (the edge encoder sends one every second)."""
        if self._task is None:
            self._task = asyncio.create_task(self._pump())
        if not self._gop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._keyframe_seen.wait(), timeout)
        return self._gop[0] if self._gop else None

    def unsubscribe(self, track: ViewerTrack) -> None:
        self._viewers.discard(track)

    def prime(self, track: ViewerTrack) -> None:
        """Queue the cached GOP with timestamps one tick apart, so the browser decodes and
        shows the current picture at once instead of replaying the last second at its
        original pace (and staying that far behind live). A new viewer's GOP ends at the live
        edge; a resyncing viewer's starts just after what it already got (never backwards)."""
        gop = list(self._gop)
        if not gop or gop[-1].pts is None:
            return
        last = track.last_pts
        start = last + 1 if last is not None else gop[-1].pts - (len(gop) - 1)
        for i, unit in enumerate(gop):
            track.offer(unit, start + i)

    async def _pump(self) -> None:
        try:
            while True:
                packet = await self._source.recv()
                if not isinstance(packet, av.Packet):
                    continue
                for unit in self._assembler.push(packet):
                    self._publish(unit)
        except MediaStreamError:
            log.info("camera stream ended; %d viewers closed", len(self._viewers))
        finally:
            for track in list(self._viewers):
                track.end()

    def _publish(self, unit: AccessUnit) -> None:
        self.units += 1
        if unit.keyframe:
            self._gop = [unit]
            self._keyframe_seen.set()
        elif self._gop and len(self._gop) < MAX_GOP:
            self._gop.append(unit)
        else:
            self._gop = []  # GOP too long to cache: joiners wait for the next keyframe
        for track in list(self._viewers):
            track.offer(unit)

    def stop(self) -> None:
        """Stop reading the camera (its player is being closed); viewers' tracks end."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for track in list(self._viewers):
            track.end()
