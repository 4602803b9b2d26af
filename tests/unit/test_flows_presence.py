"""Pure flows rules: local days and hours, presence bits, k-suppression."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from stream.flows.presence import hour_bit, hours_of, local_day, publishable, split_by_day


def test_local_day_is_ho_chi_minh_time() -> None:
    assert local_day(datetime(2025, 3, 1, 16, 59, tzinfo=UTC)) == date(2025, 3, 1)
    assert local_day(datetime(2025, 3, 1, 17, 0, tzinfo=UTC)) == date(2025, 3, 2)


def test_session_across_local_midnight_splits_into_two_days() -> None:
    start = datetime(2025, 3, 1, 15, 30, tzinfo=UTC)  # 22:30 local
    end = datetime(2025, 3, 1, 18, 10, tzinfo=UTC)  # 01:10 local next day
    first, second = split_by_day(start, end)
    assert (first.day, second.day) == (date(2025, 3, 1), date(2025, 3, 2))
    assert first.hours == (1 << 22) | (1 << 23) and second.hours == 0b11
    assert second.first_seen == datetime(2025, 3, 1, 17, 0, tzinfo=UTC)
    assert [h.hour for h in hours_of(second.hours, second.day)] == [0, 1]
    assert hour_bit(datetime(2025, 3, 1, 1, 0, tzinfo=UTC)) == 1 << 8


def test_k_suppression_hides_nine_and_shows_ten() -> None:
    cells = [(("a", "b"), 10), (("a", "c"), 9), (("b", "c"), 0), (("c", "a"), 25)]
    assert publishable(cells, 10) == [(("a", "b"), 10), (("c", "a"), 25)]
    with pytest.raises(ValueError):
        publishable(cells, 0)
