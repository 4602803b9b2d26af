"""Camera tours API: WHEP live video, snapshots, the tour list, shared PTZ control, tour page.

Mounted by ``api.app`` (``FEATURE_MODULES``); :func:`lifespan` creates the per-camera state,
the MQTT command sender and the tour scheduler, and closes every peer connection on exit.
"""

from __future__ import annotations

import asyncio
import html
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import av
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError

from api.cameras.lease import Lease
from api.cameras.limits import RateLimit, client_ip, read_offer
from api.cameras.ptz_limits import bounded_move
from api.cameras.settings import CameraApiSettings
from api.cameras.state import ONVIF_ERRORS, CameraState, CommandSender
from api.cameras.still import keyframe_jpeg
from api.cameras.tickets import TicketIssuer
from api.cameras.tours import TourScheduler
from api.cameras.whep import WhepError, check_offer
from api.errors import ApiError
from schemas.camera import GotoPreset, Move, Stop

router = APIRouter(tags=["cameras"])
PAGE = (Path(__file__).parent / "tour.html").read_text(encoding="utf-8")
#: The tour page may not be framed by other sites (clickjacking the PTZ controls).
PAGE_CSP = "frame-ancestors 'none'"
#: How long a snapshot waits for the stream's first keyframe (the edge sends one a second).
SNAPSHOT_WAIT_S = 3.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    tuning = CameraApiSettings()
    cameras = {c.id: CameraState(c, tuning) for c in app.state.device_configs.cameras if c.setup}
    sender = CommandSender(settings.mqtt_client_settings())
    scheduler = TourScheduler(cameras, sender)
    app.state.cameras, app.state.camera_commands = cameras, sender
    key, ticket_secret = tuning.operator_key, tuning.ticket_secret
    app.state.camera_operator_key = key.get_secret_value() if key else None
    app.state.camera_tickets = TicketIssuer(
        ticket_secret.get_secret_value().encode() if ticket_secret else None
    )
    whep_rate = tuning.whep_per_s
    app.state.camera_limits = {
        "whep": RateLimit(per_s=whep_rate, burst=5 * whep_rate),
        "snapshot": RateLimit(per_s=2.0, burst=10),
        "lease": RateLimit(per_s=2.0, burst=10),
        "ticket": RateLimit(per_s=whep_rate, burst=10 * whep_rate),
    }
    scheduler.start()
    warming = [asyncio.create_task(s.warm()) for s in cameras.values()]
    try:
        yield
    finally:
        for task in warming:
            task.cancel()
        await asyncio.gather(*warming, return_exceptions=True)
        await scheduler.stop()
        for state in cameras.values():
            await state.close()
        sender.close()


def get_camera(camera: str, request: Request) -> CameraState:
    state: CameraState | None = request.app.state.cameras.get(camera)
    if state is None:
        raise ApiError(404, "unknown_camera", f"no live camera {camera!r}")
    return state


CameraDep = Annotated[CameraState, Depends(get_camera)]


class TourStatus(BaseModel):
    camera: str
    site: str
    name: str
    page: str
    thumbnail: str
    whep: str
    tour: str | None
    preset: str | None
    step: int | None
    dwell_s: float | None
    narration_vi: str | None
    narration_en: str | None
    ptz_holder: bool
    live: bool
    last_error: str | None
    audio: str | None = Field(
        default=None, description="Camera audio codec, '-> opus' when transcoded once here."
    )


def _status(state: CameraState) -> TourStatus:
    cam, tour = state.camera, state.tour
    step = tour.current if tour else None
    return TourStatus(
        camera=cam.id,
        site=cam.site,
        name=cam.name,
        page=f"/tours/{cam.id}",
        thumbnail=f"/api/v1/cameras/{cam.id}/snapshot",
        whep=f"/api/v1/cameras/{cam.id}/whep",
        tour=tour.tour.name if tour else None,
        preset=state.preset,
        step=tour.step if tour else None,
        dwell_s=step.dwell_s if step else None,
        narration_vi=step.narration_vi if step else None,
        narration_en=step.narration_en if step else None,
        ptz_holder=state.leases.current is not None,
        live=state.feed is not None and state.feed.player is not None,
        last_error=state.last_error,
        audio=_audio(state),
    )


def _audio(state: CameraState) -> str | None:
    hub = state.feed.audio if state.feed is not None else None
    if hub is None or hub.codec is None:
        return None
    return f"{hub.codec} -> opus" if hub.transcoder is not None else hub.codec


@router.get("/api/v1/tours", response_model=list[TourStatus])
async def list_tours(request: Request) -> list[TourStatus]:
    """Cameras with live tours: status, current narration, thumbnail and player URLs."""
    return [_status(s) for s in request.app.state.cameras.values()]


@router.get("/api/v1/cameras/{camera}/status", response_model=TourStatus)
async def camera_status(state: CameraDep) -> TourStatus:
    return _status(state)


@router.post("/api/v1/cameras/{camera}/whep", status_code=201)
async def whep_offer(state: CameraDep, request: Request) -> Response:
    """WHEP: an SDP offer in, an SDP answer out; ``Location`` is the session to DELETE."""
    if not request.headers.get("content-type", "").startswith("application/sdp"):
        raise ApiError(415, "unsupported_media_type", "send the offer as application/sdp")
    request.app.state.camera_limits["whep"].check(request, "WHEP offer")
    auth = request.headers.get("authorization", "")
    ticket = auth[7:] if auth.lower().startswith("bearer ") else None
    if not request.app.state.camera_tickets.valid(state.camera.id, ticket):
        raise ApiError(
            401, "ticket_required", "a viewer ticket is needed (Authorization: Bearer <ticket>)"
        )
    offer = (await read_offer(request)).decode("utf-8", errors="replace")
    ip = client_ip(request)
    try:
        check_offer(offer)
        feed = await state.video_feed()
        state.peers.check(ip, feed.sessions.keys())
        answer, session = await feed.answer(offer)
        state.peers.owners[session] = ip
    except WhepError as exc:
        raise ApiError(400, "invalid_offer", str(exc)) from None
    except ONVIF_ERRORS as exc:
        await state.drop_session(exc)
        raise ApiError(503, "camera_unavailable", f"camera unreachable: {exc}") from None
    location = f"/api/v1/cameras/{state.camera.id}/whep/{session}"
    return Response(
        answer, status_code=201, media_type="application/sdp", headers={"Location": location}
    )


@router.post("/api/v1/cameras/{camera}/ticket")
async def viewer_ticket(state: CameraDep, request: Request) -> dict[str, Any]:
    """A short-lived signed ticket for one WHEP offer on this camera (rate-limited per IP)."""
    request.app.state.camera_limits["ticket"].check(request, "viewer ticket")
    issuer: TicketIssuer = request.app.state.camera_tickets
    return {"ticket": issuer.issue(state.camera.id), "expires_in_s": issuer.ttl}


@router.delete("/api/v1/cameras/{camera}/whep/{session}", status_code=200)
async def whep_stop(state: CameraDep, session: str) -> dict[str, bool]:
    if state.feed is None or not await state.feed.close_session(session):
        raise ApiError(404, "unknown_session", "no such WHEP session")
    return {"closed": True}


@router.get("/api/v1/cameras/{camera}/snapshot")
async def snapshot(state: CameraDep, request: Request) -> Response:
    """A still of what viewers see: the latest keyframe of the camera's anonymised stream
    (heads blurred and privacy masks filled at the edge), so no raw picture of the camera
    reaches this API. Decoding runs in a worker thread, at most once per camera per few
    seconds (cached), rate-limited."""
    request.app.state.camera_limits["snapshot"].check(request, "snapshot")
    safe = await state.snapshots.get(lambda: _anonymised_snapshot(state))
    return Response(safe, media_type="image/jpeg", headers={"Cache-Control": "max-age=3"})


async def _anonymised_snapshot(state: CameraState) -> bytes:
    try:
        feed = await state.video_feed()
        await feed.source()
    except LookupError as exc:
        raise ApiError(503, "no_stream", str(exc)) from None
    except av.FFmpegError as exc:
        raise ApiError(503, "camera_unavailable", f"stream unreachable: {exc}") from None
    unit = await feed.hub.keyframe(SNAPSHOT_WAIT_S) if feed.hub is not None else None
    if unit is None:
        raise ApiError(503, "no_picture", "the camera's stream has sent no picture yet")
    try:
        return await asyncio.to_thread(keyframe_jpeg, unit)
    except (ValueError, av.FFmpegError) as exc:
        raise ApiError(502, "bad_snapshot", str(exc)) from None


class LeaseRequest(BaseModel):
    """``viewer``: the id the server issued on an earlier call (keeps a queue place); any
    other value is replaced by a fresh server-issued id."""

    viewer: Annotated[str | None, Field(max_length=64)] = None


@router.post("/api/v1/cameras/{camera}/ptz/lease")
async def take_lease(
    state: CameraDep,
    body: LeaseRequest,
    request: Request,
    response: Response,
    x_operator_key: Annotated[str | None, Header()] = None,
    x_ptz_lease: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Take or renew the PTZ lease; while someone else holds it you are queued (202).
    A wrong operator key is refused (401), never silently downgraded to a viewer."""
    request.app.state.camera_limits["lease"].check(request, "PTZ lease")
    operator = False
    if x_operator_key is not None:
        key = request.app.state.camera_operator_key
        # bytes: compare_digest raises TypeError on non-ASCII str (was a 500)
        given = x_operator_key.encode("utf-8", "surrogateescape")
        if not key or not secrets.compare_digest(key.encode(), given):
            raise ApiError(401, "bad_operator_key", "wrong operator key")
        operator = True
    if x_ptz_lease is not None:  # renewal: by token only
        lease = state.leases.renew(x_ptz_lease)
        if lease is None:
            raise ApiError(409, "lease_lost", "your PTZ lease expired or was taken over")
        return _lease_body(state, lease)
    leases = state.leases
    viewer = body.viewer if body.viewer and leases.known(body.viewer) else None
    viewer = viewer or secrets.token_urlsafe(12)
    grant = leases.request(viewer, operator=operator)
    if grant.lease is not None:
        return _lease_body(state, grant.lease)
    if grant.position == 0:
        raise ApiError(409, "renew_with_token", "you hold the lease: renew with X-PTZ-Lease")
    if grant.position < 0:
        raise ApiError(503, "queue_full", "too many viewers waiting for the camera; try later")
    response.status_code = 202
    return {
        "queued": True,
        "viewer": viewer,
        "position": grant.position,
        "message": "another viewer controls the camera; you are in the queue",
    }


def _lease_body(state: CameraState, lease: Lease) -> dict[str, Any]:
    left = max(0.0, lease.expires - state.leases.clock())
    return {
        "token": lease.token,
        "viewer": lease.holder,
        "expires_in_s": round(left, 1),
        "operator": lease.operator,
    }


@router.delete("/api/v1/cameras/{camera}/ptz/lease")
async def release_lease(
    state: CameraDep, x_ptz_lease: Annotated[str | None, Header()] = None
) -> dict[str, bool]:
    if not x_ptz_lease or not state.leases.release(x_ptz_lease):
        raise ApiError(404, "no_lease", "you do not hold the PTZ lease")
    return {"released": True}


class PtzCommand(BaseModel):
    command: Annotated[GotoPreset | Move | Stop, Field(discriminator="action")]


@router.post("/api/v1/cameras/{camera}/ptz", status_code=202)
async def ptz(
    state: CameraDep, request: Request, x_ptz_lease: Annotated[str | None, Header()] = None
) -> dict[str, str]:
    """Move the camera; needs the PTZ lease token in ``X-PTZ-Lease``."""
    lease = state.leases.check(x_ptz_lease)
    if lease is None:
        raise ApiError(
            409,
            "lease_required",
            "take the PTZ lease first (POST .../ptz/lease); someone else may hold it",
        )
    try:
        cmd = PtzCommand.model_validate({"command": await request.json()})
    except (ValidationError, ValueError) as exc:
        raise ApiError(422, "invalid_command", str(exc).splitlines()[0][:300]) from None
    if isinstance(cmd.command, GotoPreset):
        setup = state.camera.setup
        if setup is None or cmd.command.preset not in {p.name for p in setup.presets}:
            raise ApiError(422, "unknown_preset", f"no preset {cmd.command.preset!r}")
        state.preset = cmd.command.preset
    action = cmd.command
    if isinstance(action, Move) and not lease.operator:
        action = await _public_move(state, action)
    state.leases.renew(lease.token)
    command_id = request.app.state.camera_commands.send(
        state.camera, f"viewer:{lease.holder}", action.model_dump()
    )
    return {"command_id": command_id}


async def _public_move(state: CameraState, move: Move) -> Move:
    """A viewer's move kept inside the camera's ``public_ptz`` box (403 without one: presets
    only; 422 when already at the limit; 503 when the position cannot be read)."""
    setup = state.camera.setup
    limits = setup.public_ptz if setup is not None else None
    if limits is None:
        raise ApiError(403, "presets_only", "on this camera viewers can only choose presets")
    try:
        position = await (await state.onvif()).position()
    except ONVIF_ERRORS as exc:
        await state.drop_session(exc)
        raise ApiError(503, "camera_unreachable", "cannot read the camera position") from None
    bounded = bounded_move(move, position, limits)
    if bounded is None:
        raise ApiError(422, "ptz_limit", "the camera is at the edge of the allowed view")
    return bounded


@router.get("/tours/{camera}", response_class=HTMLResponse, include_in_schema=False)
async def tour_page(state: CameraDep, request: Request) -> HTMLResponse:
    """The page carries its own viewer ticket; loading it is rate-limited per IP."""
    request.app.state.camera_limits["ticket"].check(request, "tour page")
    ticket = request.app.state.camera_tickets.issue(state.camera.id)
    page = (
        PAGE.replace("{{CAMERA}}", state.camera.id)
        .replace("{{NAME}}", html.escape(state.camera.name))
        .replace("{{TICKET}}", ticket)
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})
