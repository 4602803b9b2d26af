"""Pure rules of the flows worker: local days and hours, presence bitmasks, k-suppression.

Kept free of I/O so the definitions the SQL relies on (which local hours a session
touches, which day it belongs to, which OD cells may be published) are unit-testable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

#: Visitor days and hours are local to Ho Chi Minh City (UTC+7 all year, no DST), so an
#: hour boundary is the same instant in local time and in UTC.
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HOUR = timedelta(hours=1)


def local_day(t: datetime) -> date:
    return t.astimezone(LOCAL_TZ).date()


def hour_start(t: datetime) -> datetime:
    """Start of the local hour containing ``t`` (as an aware local datetime)."""
    return t.astimezone(LOCAL_TZ).replace(minute=0, second=0, microsecond=0)


def hour_bit(hour: datetime) -> int:
    """The presence bit of a local hour: bit h for local hour h of the day."""
    return 1 << hour.astimezone(LOCAL_TZ).hour


def hours_of(bits: int, day: date) -> list[datetime]:
    """The local hour starts whose bits are set in a presence bitmask of ``day``."""
    return [
        datetime(day.year, day.month, day.day, h, tzinfo=LOCAL_TZ)
        for h in range(24)
        if bits >> h & 1
    ]


@dataclass(frozen=True)
class DayPresence:
    """A session's contribution to one (site, day, client) presence row."""

    day: date
    first_seen: datetime
    last_seen: datetime
    hours: int


def split_by_day(start: datetime, end: datetime) -> Iterator[DayPresence]:
    """Cut a session span [start, end] into local days, with the hours it overlaps."""
    if end < start:
        start, end = end, start
    cursor = start
    while True:
        day = local_day(cursor)
        next_midnight = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ) + timedelta(1)
        day_end = min(end, next_midnight - timedelta(microseconds=1))
        bits = 0
        h = hour_start(cursor)
        while h <= day_end:
            bits |= hour_bit(h)
            h += HOUR
        yield DayPresence(day, cursor, day_end, bits)
        if end < next_midnight:
            return
        cursor = next_midnight


C = TypeVar("C")


def publishable(cells: Iterable[tuple[C, int]], k: int) -> list[tuple[C, int]]:
    """Cells that may be published: those counting at least ``k`` clients.

    Smaller cells are suppressed (left out), never rounded: a rounded 3 still tells that
    a handful of identifiable people made that trip.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    return [(cell, n) for cell, n in cells if n >= k]
