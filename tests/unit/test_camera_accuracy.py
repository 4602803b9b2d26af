"""Scoring line counts crossing by crossing (edge.camera.accuracy.match_crossings)."""

from __future__ import annotations

from edge.camera.accuracy import match_crossings


def test_a_miss_and_a_phantom_add_up_instead_of_cancelling() -> None:
    truth = [(100, "gate", 1)]
    counted = [(300, "gate", 1)]  # same direction, far too late: a different crossing
    assert match_crossings(truth, counted, tolerance=14, start=0) == (1, 1)


def test_lag_within_tolerance_matches_and_direction_and_line_must_agree() -> None:
    truth = [(100, "gate", 1), (120, "gate", -1), (130, "door", 1)]
    counted = [(104, "gate", 1), (121, "gate", 1), (131, "door", 1)]
    # The second counted crossing has the wrong direction: one miss and one phantom.
    assert match_crossings(truth, counted, tolerance=14, start=0) == (1, 1)


def test_each_counted_crossing_matches_one_annotated_crossing() -> None:
    truth = [(100, "gate", 1), (102, "gate", 1)]
    counted = [(103, "gate", 1)]
    assert match_crossings(truth, counted, tolerance=14, start=0) == (1, 0)


def test_warm_up_crossings_match_but_are_not_scored() -> None:
    truth = [(28, "gate", -1), (40, "gate", 1)]
    # The counter reports the warm-up crossing just after the warm-up ends: not a phantom.
    counted = [(10, "gate", 1), (32, "gate", -1), (41, "gate", 1)]
    assert match_crossings(truth, counted, tolerance=14, start=30) == (0, 0)


def test_tracker_keeps_identities_of_two_people_passing_each_other() -> None:
    """Nearest-neighbour matching on the last position swaps two people who pass close
    by (each then looks like it turned back: two crossings lost); matching on the position
    predicted from each track's velocity keeps them apart."""
    from edge.camera.counting import Blob, Tracker

    tracker = Tracker(max_dist=40.0)
    for step in range(8):
        a = Blob(100 + 24 * step, 200, 20, 50, 1)  # walks right
        b = Blob(250 - 24 * step, 204, 20, 50, 1)  # walks left, 4 px lower
        tracker.update([a, b])
    first, second = tracker.tracks[1], tracker.tracks[2]  # a, then b, at the first frame
    assert first.foot[0] > second.foot[0], "identities swapped where the two met"
