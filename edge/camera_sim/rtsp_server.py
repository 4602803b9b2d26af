"""RTSP half of the camera simulator, run by the SYSTEM Python (``/usr/bin/python3``).

Why a separate process: Debian's GStreamer RTSP server is only importable through
python3-gi, which lives in the system interpreter, not in the project venv. The venv side
(``edge.camera_sim.process``) starts this script and steers it over stdin with JSON lines:

* ``{"crop": [x, y, w, h]}`` -- the PTZ window in source pixels (a moving crop = pan/tilt/zoom);
* ``{"bang": 0.6}`` -- a loud noise on the audio track for that many seconds.

Video: ffmpeg decodes the looping source to raw I420 (``-stream_loop`` is safe when decoding,
unlike with the Annex-B bitstream filter), frames are paced here, cropped by ``videocrop``,
scaled to 640x480 and encoded once with x264 for every client (shared media), one slice per
frame unless ``--slices`` asks for more (real cameras do; tests use it to stress relays).
Audio: pink noise at a low level in G.711 mu-law, the codec a typical PTZ camera microphone
offers, or with ``--audio aac`` AAC-LC at 16 kHz as RFC 3640 (mpeg4-generic), which many
newer cameras send and browsers cannot take over WebRTC (the relay transcodes it to Opus).
Prints ``READY <port>`` on stdout once listening.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

OUT_W, OUT_H = 640, 480
QUIET_VOLUME = 0.03  # ~ -40 dBFS pink noise: a calm outdoor scene
LOUD_VOLUME = 0.9  # a shout / bang close to full scale
AUDIO_ENCODERS = {
    "pcmu": "! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "aac": "! audio/x-raw,rate=16000,channels=1 ! voaacenc bitrate=32000 "
    "! rtpmp4gpay name=pay1 pt=97",
}


class Camera:
    """Shared state: current crop window and live media elements."""

    def __init__(
        self, video: str, width: int, height: int, fps: int, slices: int = 1, audio: str = "pcmu"
    ) -> None:
        self.video, self.width, self.height, self.fps = video, width, height, fps
        self.slices, self.audio = slices, audio
        self.crop = (0, 0, width, height)
        self.lock = threading.Lock()
        self.croppers: list[Gst.Element] = []
        self.volumes: list[Gst.Element] = []

    def launch(self) -> str:
        caps = (
            f"video/x-raw,format=I420,width={self.width},height={self.height},"
            f"framerate={self.fps}/1"
        )
        return (
            "( appsrc name=src is-live=true do-timestamp=true format=time stream-type=seekable "
            f"caps={caps} "
            "! queue max-size-buffers=4 leaky=downstream ! videocrop name=crop ! videoscale "
            f"! video/x-raw,width={OUT_W},height={OUT_H} "
            # threads=1: zerolatency's sliced threads would cut every frame into one slice per
            # core; slices are explicit instead (1 by default, more to test relays with).
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={self.fps} bitrate=700 "
            f"threads=1 option-string=slices={self.slices} "
            "! video/x-h264,profile=constrained-baseline "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 "
            f"audiotestsrc is-live=true wave=pink-noise volume={QUIET_VOLUME} name=noise "
            f"{AUDIO_ENCODERS[self.audio]} )"
        )

    def set_crop(self, crop: tuple[int, int, int, int]) -> None:
        x, y, w, h = (int(v) & ~1 for v in crop)  # I420 needs even offsets and sizes
        x = max(0, min(x, self.width - 2))
        y = max(0, min(y, self.height - 2))
        w = max(2, min(w, self.width - x))
        h = max(2, min(h, self.height - y))
        with self.lock:
            self.crop = (x, y, w, h)
            for el in self.croppers:
                self._apply(el)

    def _apply(self, el: Gst.Element) -> None:
        x, y, w, h = self.crop
        el.set_property("left", x)
        el.set_property("top", y)
        el.set_property("right", self.width - x - w)
        el.set_property("bottom", self.height - y - h)

    def bang(self, seconds: float) -> None:
        with self.lock:
            for vol in self.volumes:
                vol.set_property("volume", LOUD_VOLUME)
        GLib.timeout_add(int(seconds * 1000), self._quiet)

    def _quiet(self) -> bool:
        with self.lock:
            for vol in self.volumes:
                vol.set_property("volume", QUIET_VOLUME)
        return False

    def on_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        bin_ = media.get_element()
        crop = bin_.get_by_name_recurse_up("crop")
        noise = bin_.get_by_name_recurse_up("noise")
        with self.lock:
            self.croppers.append(crop)
            self.volumes.append(noise)
            self._apply(crop)
        appsrc = bin_.get_by_name_recurse_up("src")
        # RTSP PLAY seeks the (shared, live) media to npt=0; a live camera just accepts it.
        appsrc.connect("seek-data", lambda _src, _offset: True)
        stop = threading.Event()
        media.connect("unprepared", lambda _m: self._forget(crop, noise, stop))
        threading.Thread(target=self._feed, args=(appsrc, stop), daemon=True).start()

    def _forget(self, crop: Gst.Element, noise: Gst.Element, stop: threading.Event) -> None:
        stop.set()
        with self.lock:
            self.croppers.remove(crop)
            self.volumes.remove(noise)

    def _feed(self, appsrc: Gst.Element, stop: threading.Event) -> None:
        """Decode the looping file and push frames at the source frame rate."""
        frame_bytes = self.width * self.height * 3 // 2
        cmd = [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-stream_loop",
            "-1",
            "-i",
            self.video,
            "-an",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        period = 1.0 / self.fps
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                data = proc.stdout.read(frame_bytes)
                if len(data) < frame_bytes:
                    print("ffmpeg stopped feeding frames", file=sys.stderr, flush=True)
                    break
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_at = time.monotonic()  # fell behind: do not burst to catch up
                flow = appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(data))
                if flow != Gst.FlowReturn.OK:  # said, so a stream without frames has a cause
                    if not stop.is_set():
                        print(f"feeder stopped: appsrc returned {flow.value_nick}",
                              file=sys.stderr, flush=True)  # fmt: skip
                    break
        finally:
            proc.kill()
            proc.wait()


def read_commands(camera: Camera) -> None:
    """Apply stdin commands; exit the process when the parent closes stdin (it went away)."""
    for line in sys.stdin:
        try:
            msg = json.loads(line)
            if "crop" in msg:
                camera.set_crop(tuple(msg["crop"]))
            if "bang" in msg:
                camera.bang(float(msg["bang"]))
        except (ValueError, TypeError, KeyError) as exc:
            print(f"bad control line {line.strip()!r}: {exc}", file=sys.stderr, flush=True)
    GLib.idle_add(lambda: sys.exit(0))
    time.sleep(0.5)
    raise SystemExit(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--size", required=True, help="source WIDTHxHEIGHT")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--slices", type=int, default=1, help="H.264 slices per frame")
    parser.add_argument("--audio", choices=sorted(AUDIO_ENCODERS), default="pcmu")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    Gst.init(None)
    camera = Camera(args.video, width, height, args.fps, args.slices, args.audio)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(camera.launch())
    factory.set_shared(True)
    factory.connect("media-configure", camera.on_configure)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    threading.Thread(target=read_commands, args=(camera,), daemon=True).start()
    print(f"READY {server.get_bound_port()}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 15, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
