"""Wi-Fi edge fields of the device configs: RADIUS clients (NAS), AP identities, secrets.

Secrets are never written in the YAML. A :data:`SecretRef` names where the value lives:
``env:NAME`` (an environment variable) or ``secret:KEY`` (a key in the deployment's secrets
file, a root-only YAML mapping kept out of git). :func:`resolve_secret` looks it up.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SecretRef = Annotated[str, StringConstraints(pattern=r"^(env|secret):[A-Za-z0-9_.-]{1,128}$")]
MacAddress = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}$", to_lower=True)
]
NasIdentifier = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class RadiusNas(BaseModel):
    """A RADIUS accounting client at a site: a Wi-Fi controller or a gateway for many APs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ip: IPv4Address | IPv6Address = Field(description="Source address of its packets.")
    secret: SecretRef = Field(description="Shared secret reference (env:... or secret:...).")
    nas_identifier: NasIdentifier | None = None


def mac_key(mac: str) -> str:
    """Canonical 12-hex-digit form used to look up infrastructure (AP) MACs."""
    return "".join(c for c in mac.lower() if c in "0123456789abcdef")


def load_secrets(path: Path | None) -> dict[str, str]:
    """Read a secrets file (YAML mapping key -> value); refuse one readable by others."""
    if path is None:
        return {}
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} is mode {mode:o}; secrets files must be 0600 or stricter")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of secret names to values")
    return {str(k): str(v) for k, v in data.items()}


def resolve_secret(ref: str, secrets: Mapping[str, str]) -> str:
    """The value a :data:`SecretRef` points to; KeyError naming the reference if missing."""
    kind, _, name = ref.partition(":")
    value = os.environ.get(name) if kind == "env" else secrets.get(name)
    if value is None:
        where = "environment" if kind == "env" else "secrets file"
        raise KeyError(f"secret {ref!r} not found in the {where}")
    return value
