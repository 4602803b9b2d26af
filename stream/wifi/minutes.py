"""Which (site, minute) rollups a batch invalidates.

A minute's rollup is a pure function of the sessions overlapping it, so after a batch only
minutes whose inputs changed need recomputing: those between a session's old and new start
and between its old and new end, clipped to the window the site has materialised
([first_minute, closed_through]), plus minutes newly added to that window. Recomputing
exactly these keeps late and reordered events cheap *and* exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class SessionChange:
    """A session row before (None if new) and after a batch's merge."""

    site: str
    old_start: datetime | None
    old_end: datetime | None
    new_start: datetime
    new_end: datetime

    def minute_ranges(self) -> list[tuple[datetime, datetime]]:
        """Inclusive minute ranges whose rollups this change can alter."""
        if self.old_start is None or self.old_end is None:
            return [(floor_minute(self.new_start), floor_minute(self.new_end))]
        ranges = []
        for old, new in ((self.old_start, self.new_start), (self.old_end, self.new_end)):
            if old != new:
                ranges.append((floor_minute(min(old, new)), floor_minute(max(old, new))))
        return ranges


@dataclass(frozen=True)
class WindowChange:
    """A site's materialised window before (None if new) and after a batch or a close."""

    site: str
    old_first: datetime | None
    old_through: datetime | None
    new_first: datetime
    new_through: datetime

    def new_ranges(self) -> list[tuple[datetime, datetime]]:
        """Minutes that entered the window and so need a row even if no session changed."""
        if self.old_first is None or self.old_through is None:
            return [(self.new_first, self.new_through)]
        ranges = []
        if self.new_first < self.old_first:
            ranges.append((self.new_first, self.old_first - MINUTE))
        if self.new_through > self.old_through:
            ranges.append((self.old_through + MINUTE, self.new_through))
        return ranges


def minutes_to_recompute(
    changes: Iterable[SessionChange], windows: Iterable[WindowChange]
) -> list[tuple[str, datetime]]:
    """Sorted distinct (site, minute) pairs to recompute, all inside their site's window."""
    window_list = list(windows)
    bounds = {w.site: (w.new_first, w.new_through) for w in window_list}
    ranges: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for change in changes:
        ranges[change.site].extend(change.minute_ranges())
    for window in window_list:
        ranges[window.site].extend(window.new_ranges())
    out: set[tuple[str, datetime]] = set()
    for site, site_ranges in ranges.items():
        if site not in bounds:
            continue
        first, through = bounds[site]
        for lo, hi in site_ranges:
            m, end = max(lo, first), min(hi, through)
            while m <= end:
                out.add((site, m))
                m += MINUTE
    return sorted(out)
