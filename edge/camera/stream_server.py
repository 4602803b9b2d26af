"""The agent's anonymised RTSP stream, run by the SYSTEM Python (``/usr/bin/python3``).

Why GStreamer's RTSP server in a child process: it is the only RTSP *server* Debian ships
that a program can feed frames to (ffmpeg can only push to a server or listen for one
client; MediaMTX is not packaged), and its Python bindings (python3-gi,
gir1.2-gst-rtsp-server-1.0) live in the system interpreter, not in the project venv. The
camera simulator already runs the same way (``edge/camera_sim/rtsp_server.py``), so the
packages are installed everywhere the camera code runs.

The agent writes anonymised frames, raw I420 of ``--size``, to stdin. They are encoded once
with x264 for every client (shared media): constrained-baseline (what every WebRTC browser
decodes), one slice per frame (``threads=1``: zerolatency's sliced threads would cut a frame
into one slice per core), a keyframe every second (``key-int-max`` = fps; at most 2 s is required,
2 s, one second halves a new viewer's worst wait), SPS/PPS with every keyframe. Frames are
pushed as they arrive and timestamped on arrival, so the stream runs at the agent's pace.
With ``--audio-from URL`` (the camera's own RTSP), the camera's microphone is added as a
second track: its audio alone is pulled (the video pad stays unlinked), decoded whatever the
codec (G.711, AAC) and sent as G.711 mu-law, which the relay passes through to browsers.
Prints ``READY <port>`` once listening; exits when stdin closes (the agent went away).
"""

from __future__ import annotations

import argparse
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


class Feed:
    """Reads frames from stdin and pushes each into every live media's appsrc."""

    def __init__(
        self, width: int, height: int, fps: int, bitrate: int, audio_from: str | None = None
    ) -> None:
        self.width, self.height, self.fps, self.bitrate = width, height, fps, bitrate
        self.audio_from = audio_from
        self.frame_bytes = width * height * 3 // 2
        self.lock = threading.Lock()
        self.sources: list[Gst.Element] = []

    def launch(self) -> str:
        caps = (
            f"video/x-raw,format=I420,width={self.width},height={self.height},"
            f"framerate={self.fps}/1"
        )
        return (
            "( appsrc name=src is-live=true do-timestamp=true format=time "
            f"caps={caps} ! queue max-size-buffers=4 leaky=downstream "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={self.fps} "
            f"bitrate={self.bitrate} threads=1 option-string=slices=1 "
            "! video/x-h264,profile=constrained-baseline "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 "
            f"{self._audio()} )"
        )

    def _audio(self) -> str:
        if not self.audio_from:
            return ""
        location = self.audio_from.replace('"', "%22")
        return (
            f'rtspsrc location="{location}" protocols=tcp latency=200 '
            "! application/x-rtp,media=audio ! decodebin ! audioconvert ! audioresample "
            "! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0"
        )

    def on_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        appsrc.connect("seek-data", lambda _src, _offset: True)  # live: PLAY's seek is fine
        with self.lock:
            self.sources.append(appsrc)
        media.connect("unprepared", lambda _m: self._forget(appsrc))

    def _forget(self, appsrc: Gst.Element) -> None:
        with self.lock:
            if appsrc in self.sources:
                self.sources.remove(appsrc)

    def read(self) -> None:
        """Push every frame from stdin; stop the main loop at end of input."""
        stdin = sys.stdin.buffer
        while True:
            data = stdin.read(self.frame_bytes)
            if len(data) < self.frame_bytes:
                break
            with self.lock:
                sources = list(self.sources)
            for src in sources:  # nobody watching: the frame is simply not encoded
                src.emit("push-buffer", Gst.Buffer.new_wrapped(data))
        GLib.idle_add(lambda: sys.exit(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--bitrate", type=int, default=700, help="kbit/s")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/anonymised")
    parser.add_argument("--audio-from", default=None, help="camera RTSP URL for its sound")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    feed = Feed(width, height, args.fps, args.bitrate, args.audio_from)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(feed.launch())
    factory.set_shared(True)
    factory.connect("media-configure", feed.on_configure)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    threading.Thread(target=feed.read, daemon=True).start()
    print(f"READY {server.get_bound_port()}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 15, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
