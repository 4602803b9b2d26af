"""SQL for the time bins that session tables index instead of times an update moves.

An interim moves a session's end by minutes; indexing the end itself made every merge a
non-HOT update (migrations 1000 and 1001). Those migrations store the end rounded down to a
bin with ``date_bin`` from a fixed UTC origin, and queries bound that column with the same
expression, so the origin lives in one place on the Python side.
"""

from __future__ import annotations

#: date_bin's origin in migrations 1000 and 1001: a UTC midnight, so 30-minute and 1-hour
#: bins start on whole UTC half-hours and hours.
ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def time_bin(width: str, expr: str) -> str:
    """SQL for the bin of ``width`` (e.g. ``'30 minutes'``) holding the time ``expr``: a
    monotonic map, so ``x >= t`` implies ``bin(x) >= bin(t)`` (and the same for ``<=``)."""
    return f"date_bin('{width}', {expr}, {ORIGIN})"
