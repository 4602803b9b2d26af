"""Visit profiles per venue kind: when visitors arrive, how long they stay, weekend uplift.

Arrival curves = an Auckland pedestrian shape (:mod:`edge.simulator.auckland`, CC BY 4.0)
times hand-made Ho Chi Minh City adjustments, documented here as such: opening hours
(museums, markets and parks are closed at night), an evening surge for the walking street
and the backpacker street (HCMC's heat pushes strolling into the evening), and the
early-morning and late-afternoon swim at the beach. Dwell medians and weekend factors are
hand-set planning figures, not measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from device_configs.models import Site, SiteKind, VenueKind
from edge.simulator.auckland import LEISURE_WEEKEND, NIGHTLIFE_WEEKEND


@dataclass(frozen=True)
class VisitProfile:
    """How one kind of venue fills and empties over a day."""

    hourly: tuple[float, ...]  # relative arrival rate per local hour, busiest hour = 1.0
    dwell_median_min: float  # median visit length (log-normal)
    dwell_sigma: float  # log-normal shape: 0.4 = fairly regular visits, 0.8 = very mixed
    weekend_factor: float  # Saturday/Sunday arrival rate relative to weekdays

    def rate(self, local_hour: float) -> float:
        """Relative arrival rate at a fractional local hour, linear between hour midpoints.

        An hour whose value is 0 (closed) stays 0 throughout: nobody arrives at 07:40 at a
        museum that opens at 08:00, while arrivals do taper off towards closing time.
        """
        if self.hourly[int(local_hour) % 24] == 0.0:
            return 0.0
        pos = (local_hour - 0.5) % 24.0
        lo = int(pos)
        frac = pos - lo
        return self.hourly[lo] * (1 - frac) + self.hourly[(lo + 1) % 24] * frac

    @property
    def mean_dwell_s(self) -> float:
        """Mean of the log-normal dwell, seconds (Little's law turns it into arrival rates)."""
        return self.dwell_median_min * 60.0 * math.exp(self.dwell_sigma**2 / 2)


def _shape(
    base: tuple[float, ...],
    open_hours: tuple[int, int] | None = None,
    boosts: tuple[tuple[int, int, float], ...] = (),
) -> tuple[float, ...]:
    """``base`` masked to ``[open, close)`` local hours and multiplied in boosted hours.

    Hour ranges may wrap midnight (``(19, 2, 2.5)`` boosts 19:00-01:59). The result is
    rescaled so the busiest hour is 1.0 again.
    """
    curve = list(base)
    for first, end, factor in boosts:
        for h in _hours(first, end):
            curve[h] *= factor
    if open_hours is not None:
        is_open = set(_hours(*open_hours))
        curve = [v if h in is_open else 0.0 for h, v in enumerate(curve)]
    peak = max(curve)
    return tuple(round(v / peak, 3) for v in curve)


def _hours(first: int, end: int) -> list[int]:
    return [h % 24 for h in range(first, end if end > first else end + 24)]


LEISURE = LEISURE_WEEKEND
NIGHTLIFE = NIGHTLIFE_WEEKEND

PROFILES: dict[VenueKind, VisitProfile] = {
    # Ben Thanh / Binh Tay: busiest late morning, stalls close early evening.
    VenueKind.MARKET: VisitProfile(_shape(LEISURE, (6, 19), ((9, 12, 1.2),)), 45, 0.6, 1.2),
    VenueKind.MUSEUM: VisitProfile(_shape(LEISURE, (8, 17)), 90, 0.45, 1.4),
    VenueKind.LANDMARK: VisitProfile(_shape(LEISURE, (7, 19)), 25, 0.5, 1.3),
    VenueKind.WALKING_STREET: VisitProfile(_shape(NIGHTLIFE, None, ((17, 23, 2.0),)), 40, 0.8, 1.6),
    VenueKind.NIGHTLIFE: VisitProfile(
        _shape(NIGHTLIFE, None, ((19, 3, 3.0), (6, 12, 0.5))), 90, 0.7, 1.5
    ),
    VenueKind.PARK: VisitProfile(_shape(LEISURE, (7, 18)), 150, 0.5, 1.8),
    VenueKind.THEME_PARK: VisitProfile(_shape(LEISURE, (8, 18)), 240, 0.4, 2.0),
    VenueKind.HERITAGE: VisitProfile(_shape(LEISURE, (7, 17)), 120, 0.4, 1.5),
    VenueKind.CRAFT_VILLAGE: VisitProfile(_shape(LEISURE, (7, 17)), 60, 0.5, 1.3),
    VenueKind.NATURE_RESERVE: VisitProfile(_shape(LEISURE, (6, 18)), 180, 0.5, 1.6),
    VenueKind.BEACH: VisitProfile(
        _shape(LEISURE, (5, 22), ((5, 8, 5.0), (16, 19, 1.6), (11, 15, 0.6))), 150, 0.7, 2.0
    ),
}

#: Venue used for a site whose config does not say (``Site.venue`` is optional).
DEFAULT_VENUE: dict[SiteKind, VenueKind] = {
    SiteKind.URBAN: VenueKind.LANDMARK,
    SiteKind.RURAL: VenueKind.HERITAGE,
    SiteKind.CRAFT_VILLAGE: VenueKind.CRAFT_VILLAGE,
    SiteKind.NATURE: VenueKind.PARK,
    SiteKind.BEACH: VenueKind.BEACH,
}


def venue_of(site: Site) -> VenueKind:
    return site.venue or DEFAULT_VENUE[site.kind]


def profile_for(site: Site) -> VisitProfile:
    return PROFILES[venue_of(site)]
