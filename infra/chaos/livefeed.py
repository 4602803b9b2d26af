"""A client of the API's live SSE feed, watching it across a fault.

The promise under test (docs/chaos.md): a client that stays connected through a Kafka
stop is told the feed is ``stale``, later ``live`` again with the ``gap_s`` it missed, and
then receives updates again without reconnecting. The client reads ``/api/v1/live`` of the
rig's ``tourpulse api`` in a thread and keeps every event with its arrival time.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class LiveWatch:
    """``start`` before the fault, ``summary`` after the run, then ``stop``."""

    base_url: str
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LiveWatch:
        self._thread = threading.Thread(target=self._read, name="chaos-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1)  # blocked until the next ping at worst; a daemon thread

    def _read(self) -> None:
        timeout = httpx.Timeout(10.0, read=30.0)  # the feed pings every 15 s
        try:
            with (
                httpx.Client(base_url=self.base_url, timeout=timeout) as client,
                client.stream("GET", "/api/v1/live") as response,
            ):
                response.raise_for_status()
                self._parse(response)
        except httpx.ReadTimeout:
            if not self._stop.is_set():
                self.error = "nothing for 30 s (the feed pings every 15 s)"
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _parse(self, response: httpx.Response) -> None:
        kind, data = "message", list[str]()
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if line == "":
                if data:
                    self.events.append((time.monotonic(), kind, _json("\n".join(data))))
                kind, data = "message", []
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))

    def summary(self) -> dict[str, Any]:
        """What the connected client saw: stale, live again (gap), updates after that."""
        statuses = [(t, d) for t, k, d in self.events if k == "status"]
        stale = [t for t, d in statuses if d.get("state") == "stale"]
        live = [(t, d) for t, d in statuses if d.get("state") == "live" and stale and t > stale[0]]
        live_at = live[0][0] if live else None
        after = [t for t, k, _ in self.events if k == "occupancy" and live_at and t > live_at]
        out: dict[str, Any] = {
            "live_feed_stale_seen": bool(stale),
            "live_gap_s": live[0][1].get("gap_s") if live else None,
            "live_feed_resumed": bool(after),
            "live_updates_after_gap": len(after),
        }
        if self.error:
            out["live_feed_error"] = self.error
        return out


def _json(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
