"""Public PTZ inside the configured box: a viewer's continuous move is cut short so the
camera stops at the camera's ``public_ptz`` limits, and refused when it cannot move at all.

A continuous move has no end position, only a velocity and a timeout; the end position is
``position + velocity * speed * timeout`` per axis, with the camera's configured speed. So
the API reads the live position from the camera (ONVIF GetStatus) and shortens the timeout
to the first axis that would reach its limit. Operators and presets are not limited here.
"""

from __future__ import annotations

from device_configs.camera import PtzLimits
from schemas.camera import Move

#: Shorter moves than this are not worth sending: the viewer is at the limit.
MIN_MOVE_S = 0.05


def bounded_move(
    move: Move, position: tuple[float, float, float], limits: PtzLimits
) -> Move | None:
    """``move`` with blocked axes stopped (at or past their limit in the asked direction) and
    its timeout shortened so no axis passes its limit; None if nothing can move."""
    timeout = move.timeout_s
    velocities: dict[str, float] = {}
    axes = (
        ("pan", move.pan, position[0], limits.pan, limits.pan_tilt_speed_per_s),
        ("tilt", move.tilt, position[1], limits.tilt, limits.pan_tilt_speed_per_s),
        ("zoom", move.zoom, position[2], limits.zoom, limits.zoom_speed_per_s),
    )
    for name, velocity, at, (lo, hi), speed in axes:
        room = (hi - at) if velocity > 0 else (at - lo)
        if velocity == 0 or room / (abs(velocity) * speed) < MIN_MOVE_S:
            velocities[name] = 0.0
            continue
        velocities[name] = velocity
        timeout = min(timeout, room / (abs(velocity) * speed))
    if not any(velocities.values()):
        return None
    return move.model_copy(update={**velocities, "timeout_s": round(timeout, 3)})
