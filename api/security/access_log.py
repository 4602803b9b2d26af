"""Access logs without query strings.

Uvicorn logs ``GET /portal/?clientmac=..&clientip=..&fas=..`` verbatim: portal landing URLs
carry a visitor's MAC and IP and openNDS' encrypted ``fas`` blob, and stream URLs used to
carry a bearer token. Central logs are kept longer and read more widely than the data
they would leak, so the query is dropped before the record is formatted.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


class StripQueryFilter(logging.Filter):
    """Rewrites uvicorn's access record args ``(client, method, path?query, version,
    status)`` to the path alone; other records pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], strip_query(args[2]), *args[3:])
        return True


def strip_query(target: str) -> str:
    path, sep, _ = target.partition("?")
    return f"{path}?<redacted>" if sep else path


def install() -> None:
    """Attach the filter to uvicorn's access logger (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, StripQueryFilter) for f in logger.filters):
        logger.addFilter(StripQueryFilter())
