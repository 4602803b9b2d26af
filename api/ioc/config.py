"""IOC settings (``TP_IOC_*``) and the JWT signing secret.

The secret decides who can forge an operator token, so outside development the API
refuses to start without a real one; in development a random secret is generated once and
kept under the stack's data dir, so tokens survive an API restart of ``make demo``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Secrets shorter than this (bytes of text) are refused: HS256 wants >= 256 bits.
MIN_SECRET_LEN = 32
#: Values that people paste from tutorials; never accepted.
KNOWN_BAD_SECRETS = frozenset({"secret", "changeme", "change-me", "dev", "development"})
SECRET_FILE = "ioc_jwt_secret"


class InsecureConfig(RuntimeError):
    """The IOC cannot run safely with this configuration (raised at start-up)."""


class IocSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TP_IOC_", extra="ignore")

    environment: Literal["development", "production"] = Field(
        default="development",
        description="'production' requires TP_IOC_JWT_SECRET; 'development' generates one.",
    )
    jwt_secret: str | None = Field(default=None, description="HS256 signing key (>= 32 chars).")
    token_ttl_s: Annotated[int, Field(gt=0, le=7 * 86400)] = Field(
        default=8 * 3600, description="Lifetime of an access token (one control-room shift)."
    )
    tile_url: str = Field(
        default="",
        description="Leaflet tile URL template for the console map; empty = no tiles (plain "
        "background with site markers), which is what an offline control room gets.",
    )
    tile_attribution: str = ""
    od_min_count: Annotated[int, Field(ge=1)] = Field(
        default=10, description="k of the OD matrix: cells below it are suppressed."
    )


def resolve_secret(settings: IocSettings, data_dir: Path) -> str:
    """The signing secret, or :class:`InsecureConfig` if it must not be used."""
    secret = settings.jwt_secret
    if secret:
        if len(secret) < MIN_SECRET_LEN or secret.lower() in KNOWN_BAD_SECRETS:
            raise InsecureConfig(
                f"TP_IOC_JWT_SECRET is too weak: use at least {MIN_SECRET_LEN} random "
                "characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return secret
    if settings.environment != "development":
        raise InsecureConfig(
            "TP_IOC_JWT_SECRET is not set; refusing to start the IOC outside development "
            "(TP_IOC_ENVIRONMENT=production) with a generated secret"
        )
    return _dev_secret(data_dir)


def _dev_secret(data_dir: Path) -> str:
    """Read or create ``<data_dir>/ioc_jwt_secret`` (0600) atomically."""
    path = data_dir / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret
