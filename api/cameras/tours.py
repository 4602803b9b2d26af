"""The tour scheduler: walks each camera through its tour by sending preset commands.

The API owns the timing so the tour page's narration and the picture change together;
the edge agent only executes ``goto_preset``. One task per camera with a tour; a viewer
holding the PTZ lease pauses the tour (the dwell timer waits) instead of fighting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from api.cameras.state import CameraState, CommandSender, TourState

log = logging.getLogger(__name__)
LEASE_POLL_S = 1.0


class TourScheduler:
    def __init__(self, cameras: dict[str, CameraState], sender: CommandSender) -> None:
        self.cameras, self.sender = cameras, sender
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for state in self.cameras.values():
            setup = state.camera.setup
            if setup is not None and setup.tours:
                state.tour = TourState(setup.tours[0])
                self._tasks.append(asyncio.create_task(self._run(state)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, state: CameraState) -> None:
        tour = state.tour
        assert tour is not None
        while True:
            step = tour.current
            tour.started_at = time.time()
            if state.leases.check(state.leases.current.token if state.leases.current else None):
                await asyncio.sleep(LEASE_POLL_S)  # a viewer is steering: hold the tour
                continue
            try:
                self.sender.send(
                    state.camera, "tour-scheduler", {"action": "goto_preset", "preset": step.preset}
                )
                state.preset = step.preset
            except ConnectionError as exc:
                state.last_error = str(exc)
            await asyncio.sleep(step.dwell_s)
            if tour.step + 1 < len(tour.tour.steps):
                tour.step += 1
            elif tour.tour.loop:
                tour.step = 0
            else:
                return
