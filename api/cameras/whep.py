"""WHEP playback with aiortc: one RTSP pull per camera, fanned out without re-encoding.

``MediaPlayer(decode=False)`` hands the camera's H.264 packets to a ``MediaRelay``; every
viewer's peer connection gets a relay subscription, and H.264 is forced with
``setCodecPreferences`` *before* ``setRemoteDescription`` (otherwise aiortc negotiates VP8
and labels the H.264 packets wrongly). Encoding once at the camera and forwarding packets
costs a fraction of a percent of a core per viewer; transcoding would cost 6-9 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer
from aiortc.sdp import SessionDescription

from api.cameras.audio import AudioHub
from api.cameras.opus import open_camera
from api.cameras.relay import VideoHub, ViewerTrack

log = logging.getLogger(__name__)
ICE_GATHER_TIMEOUT_S = 10.0
#: A peer that has not connected by then (abandoned offer, blocked UDP) is closed.
CONNECT_TIMEOUT_S = 30.0
#: TCP interleaving survives lossy uplinks; short probing because the camera's stream
#: parameters come with every keyframe (SPS/PPS), so waiting 5 s to analyse it buys nothing.
RTSP_OPTIONS = {
    "rtsp_transport": "tcp",
    "analyzeduration": "1000000",
    "probesize": "500000",
    "fflags": "nobuffer",
}
#: A camera answers "503 Service Unavailable" while it tears down or sets up its stream
#: (the simulator's shared media between its last and next client; many PTZ cameras at their
#: session limit). That passes within a second, so opening retries it before giving up.
OPEN_ATTEMPTS = 3
OPEN_RETRY_S = 0.5


def ice_servers(value: str) -> list[RTCIceServer]:
    """STUN servers for the API's side of WebRTC: ``TP_CAMERA_ICE_SERVERS``, comma-separated
    ``stun:host:port`` URLs, none by default. The API sits on an address its viewers reach, so
    host candidates suffice; aiortc's default (Google's public STUN server) would add an
    outside round trip to every answer, and up to 5 s where outbound UDP is blocked."""
    return [RTCIceServer(urls=url.strip()) for url in value.split(",") if url.strip()]


class WhepError(ValueError):
    """The offer cannot be answered (malformed SDP, no video, no H.264)."""


def check_offer(sdp: str) -> None:
    """Reject, before any camera work, what is not a parseable SDP offer with video."""
    if not sdp.lstrip().startswith("v=0") or "m=video" not in sdp:
        raise WhepError("the offer is not an SDP offer with a video section")
    try:
        SessionDescription.parse(sdp)
    except Exception as exc:  # untrusted input: any parser failure is a 400
        # aiortc's parser is not hardened: fuzzing found AssertionError, StopIteration and
        # more besides ValueError (1,931 of 10,000 mutated offers became 500s).
        raise WhepError(f"malformed SDP offer ({type(exc).__name__})") from exc


@dataclass
class CameraFeed:
    """The single RTSP pull of one camera and the viewers attached to it."""

    rtsp_url: str
    ice: list[RTCIceServer] = field(default_factory=list)
    player: MediaPlayer | None = None
    hub: VideoHub | None = None
    audio: AudioHub | None = None
    sessions: dict[str, RTCPeerConnection] = field(default_factory=dict)
    _reapers: set[asyncio.Task[None]] = field(default_factory=set)

    async def source(self) -> MediaPlayer:
        """The camera pull, (re)opened when absent or ended. Opening probes the RTSP stream,
        which blocks for a moment, hence the thread."""
        player = self.player
        if player is None or (player.video is not None and player.video.readyState == "ended"):
            self._stop_player()
            player = await self._open()
            self.player = player
            if player.video is not None:
                self.hub = VideoHub(player.video)
            if player.audio is not None:
                self.audio = AudioHub(player.audio)
        return player

    async def _open(self) -> MediaPlayer:
        for attempt in range(1, OPEN_ATTEMPTS):
            try:
                return await asyncio.to_thread(open_camera, self.rtsp_url, RTSP_OPTIONS)
            except av.error.HTTPServerError as exc:  # RTSP 5xx: busy or between streams
                log.info("camera stream busy (%s); retry %d of %d", exc, attempt, OPEN_ATTEMPTS)
                await asyncio.sleep(OPEN_RETRY_S * attempt)
        return await asyncio.to_thread(open_camera, self.rtsp_url, RTSP_OPTIONS)

    async def answer(self, offer_sdp: str) -> tuple[str, str]:
        """SDP answer and session id for a viewer's offer."""
        check_offer(offer_sdp)
        h264 = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() == "video/h264"
        ]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice))
        session_id = secrets.token_urlsafe(12)
        try:
            player = await self.source()
            if player.video is None or self.hub is None:
                raise WhepError("the camera stream has no video")
            track = self.hub.subscribe()
            transceiver = pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(h264)
            _on_picture_loss(transceiver.sender, track)
            await self._add_audio(pc, offer_sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            answer = await pc.createAnswer()
            if answer is None or "H264" not in answer.sdp:
                raise WhepError("the viewer does not accept H.264")
            await asyncio.wait_for(pc.setLocalDescription(answer), ICE_GATHER_TIMEOUT_S)
        except (ValueError, TimeoutError, av.FFmpegError) as exc:
            await pc.close()
            raise WhepError(str(exc) or type(exc).__name__) from exc
        self.sessions[session_id] = pc

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close_session(session_id)

        reaper = asyncio.create_task(self._reap_idle(session_id, pc))
        self._reapers.add(reaper)
        reaper.add_done_callback(self._reapers.discard)

        return pc.localDescription.sdp, session_id

    async def _add_audio(self, pc: RTCPeerConnection, offer_sdp: str) -> None:
        """The camera's sound, when the viewer asks for audio and the codec passes through."""
        if self.audio is None or "m=audio" not in offer_sdp:
            return
        mime = await self.audio.mime_type()
        if mime is None:
            log.info("camera audio %s is not forwarded (not PCMU/PCMA/Opus)", self.audio.codec)
            return
        codecs = [
            c
            for c in RTCRtpSender.getCapabilities("audio").codecs
            if c.mimeType.lower() == mime.lower()
        ]
        pc.addTransceiver(self.audio.subscribe(), direction="sendonly").setCodecPreferences(codecs)

    async def _reap_idle(self, session_id: str, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if pc.connectionState != "connected":
            log.info("WHEP session %s never connected; closed", session_id)
            await self.close_session(session_id)

    async def close_session(self, session_id: str) -> bool:
        pc = self.sessions.pop(session_id, None)
        if pc is None:
            return False
        for sender in pc.getSenders():
            if sender.track is not None:
                sender.track.stop()  # leaves the hub's fan-out
        await pc.close()
        return True

    def _stop_player(self) -> None:
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
        if self.audio is not None:
            self.audio.stop()
            self.audio = None
        if self.player is not None:
            for track in (self.player.video, self.player.audio):
                if track is not None:
                    track.stop()
            self.player = None

    async def close(self) -> None:
        for task in self._reapers:
            task.cancel()
        for session_id in list(self.sessions):
            with contextlib.suppress(Exception):
                await self.close_session(session_id)
        self._stop_player()


def _on_picture_loss(sender: RTCRtpSender, track: ViewerTrack) -> None:
    """Route the viewer's PLI/FIR to ``track.resync`` (replay the cached GOP). aiortc only
    sets an encoder flag there, which pre-encoded packets ignore, and offers no hook, so the
    sender's method is wrapped on this instance."""
    request = sender._send_keyframe

    def send_keyframe() -> None:
        request()
        track.resync()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]
