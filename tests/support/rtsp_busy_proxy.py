"""A TCP proxy in front of an RTSP server that answers its first connections itself with
``503 Service Unavailable``, as a camera does while it tears its stream down or is at its
session limit.

It runs on its own threads, not the test's event loop: aiortc's player demuxes on a thread
and joins it from the loop when stopped, so a proxy on that loop would deadlock the
teardown (the demux thread waits on the proxy, the loop waits on the thread).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading

from core.ports import free_port


class BusyOnceProxy:
    """Refuses the first ``refuse`` RTSP connections with a 503, forwards the rest."""

    def __init__(self, target_port: int, refuse: int = 1) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.refused = 0
        self._refuse = refuse
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self._sockets.append(conn)
                refuse = self.refused < self._refuse
                self.refused += refuse
            target = self._refuse_with_503 if refuse else self._forward
            threading.Thread(target=target, args=(conn,), daemon=True).start()

    def _refuse_with_503(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            cseq = re.search(rb"CSeq:\s*(\d+)", request, re.IGNORECASE)
            number = cseq.group(1) if cseq else b"1"
            conn.sendall(b"RTSP/1.0 503 Service Unavailable\r\nCSeq: " + number + b"\r\n\r\n")

    def _forward(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            conn.close()
            return
        with self._lock:
            self._sockets.append(upstream)
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
