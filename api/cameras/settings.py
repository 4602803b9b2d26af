"""The camera tours' settings, read once from ``TP_CAMERA_*`` when the API starts.

Why one model: these were five separate ``os.environ`` reads spread over the router, the
limits, the ticket issuer and the WHEP relay; here they are typed, documented and visible
to the production preflight in one place. Names are unchanged.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CameraApiSettings(BaseSettings):
    # TP_CAMERA_USER/PASSWORD/DETECT_FPS... belong to the camera agent: ignored here.
    model_config = SettingsConfigDict(
        env_prefix="TP_CAMERA_", extra="ignore", env_ignore_empty=True
    )

    operator_key: SecretStr | None = Field(
        default=None,
        description="Key of the operators' unrestricted PTZ control (X-Operator-Key); unset: "
        "operators have no camera control beyond the public limits.",
    )
    ticket_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of viewer tickets; unset: random per process (tickets then "
        "do not survive a restart nor work across several API processes).",
    )
    ice_servers: str = Field(
        default="",
        description="STUN servers for the API's side of WebRTC, comma-separated "
        "`stun:host:port` URLs; none by default (see api.cameras.whep.ice_servers).",
    )
    whep_per_s: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="WHEP offers per second per client address (burst 5x): a kiosk network "
        "behind one NAT address, or a load test on loopback, raises it.",
    )
    peers_per_camera: Annotated[int, Field(gt=0)] = Field(
        default=200, description="Live viewers of one camera; more get 503."
    )
    peers_per_ip: Annotated[int, Field(gt=0)] = Field(
        default=4, description="Live viewers of one camera from one client address; more 429."
    )
