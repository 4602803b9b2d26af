"""A camera command older (or further in the future) than a few seconds is refused, with a
reason the operator sees in the command result, and counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from edge.camera.commands import MAX_COMMAND_AGE_S, parse_command
from schemas.camera import CameraCommandV1, CommandResult

ISSUED = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)


def _payload() -> bytes:
    return json.dumps(
        {"type": "camera.command", "version": 1, "site": "s1", "device": "cam1",
         "source": "api.cameras", "event_time": ISSUED.isoformat(),
         "data": {"command_id": "c1", "issued_by": "op", "command": {"action": "stop"}}}
    ).encode()  # fmt: skip


def _expired() -> float:
    return REGISTRY.get_sample_value("tp_camera_commands_refused_total", {"reason": "expired"}) or 0


def test_fresh_commands_run_and_stale_or_future_ones_are_refused_and_counted() -> None:
    before = _expired()
    fresh = parse_command(_payload(), "s1", "cam1", now=ISSUED + timedelta(seconds=1))
    assert isinstance(fresh, CameraCommandV1)
    for delta in (MAX_COMMAND_AGE_S + 1, 3600, -(MAX_COMMAND_AGE_S + 1)):
        result = parse_command(_payload(), "s1", "cam1", now=ISSUED + timedelta(seconds=delta))
        assert isinstance(result, CommandResult)
        assert (result.ok, result.error, result.command_id) == (False, "expired", "c1")
        assert result.detail is not None and "limit 5 s" in result.detail
    assert _expired() == before + 3
