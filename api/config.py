"""Tuning knobs of the API process, read from ``TP_API_*`` env vars.

Kept apart from :class:`core.settings.Settings` (which says *where* things are) because
these say *how much*: buffer sizes and limits that tests shrink to exercise edge cases.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Positive = Annotated[int, Field(gt=0)]


class ApiTuning(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TP_API_", extra="ignore")

    db_pool_max: Positive = Field(default=10, description="Largest PostgreSQL pool size.")
    db_timeout_s: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="How long a request waits for a DB connection before 503."
    )
    history_max_buckets: Positive = Field(
        default=2000, description="Most buckets one occupancy history request may return."
    )
    live_ring_size: Positive = Field(
        default=10_000, description="Recent live messages kept in memory for fast resume."
    )
    live_client_queue: Positive = Field(
        default=1000, description="Messages buffered per SSE client before it is dropped."
    )
    live_prime_messages: Annotated[int, Field(ge=0)] = Field(
        default=500,
        description="Messages per partition re-read at boot to know each site's latest state.",
    )
    live_replay_max: Positive = Field(
        default=5_000,
        description="Most missed messages replayed from Kafka on resume of an authenticated "
        "stream; beyond it a client gets a fresh snapshot instead.",
    )
    live_replay_max_anonymous: Positive = Field(
        default=500,
        description="The same bound for the public (anonymous) /api/v1/live feed.",
    )
    live_replay_slots: Positive = Field(
        default=2, description="Kafka replays running at once per feed; more get a snapshot."
    )
    streams_max: Positive = Field(
        default=2000, description="Open SSE/WebSocket streams in total; more get 503."
    )
    streams_max_per_ip: Positive = Field(
        default=16, description="Open SSE/WebSocket streams per client address; more get 429."
    )
    stream_reauth_s: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="How often an authenticated stream re-checks its session (revocation "
        "ends it within this time).",
    )
    docs: bool = Field(
        default=True,
        description="Serve /docs, /redoc and /openapi.json (production: off, see preflight).",
    )
    max_body_bytes: Positive = Field(
        default=6 * 1024 * 1024,
        description="Largest request body accepted (413 beyond): a 5 MiB promo image upload "
        "plus multipart overhead; routes bound their own fields further.",
    )
    sse_retry_ms: Positive = Field(
        default=3000, description="Reconnect delay suggested to EventSource clients."
    )
