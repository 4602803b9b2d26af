"""The event processes' collector settings: start-up heap frozen, young collections rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from core.gc_tuning import YOUNG_THRESHOLD, tune_for_streaming, tuned_for_streaming


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    survivor: list[object] = [[]]  # containers of containers are always tracked
    assert any(survivor is o for o in gc.get_objects())
    tune_for_streaming()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert not any(survivor is o for o in gc.get_objects())  # frozen: never scanned again


@pytest.mark.usefixtures("restore_gc")
def test_cycles_made_later_are_still_collected() -> None:
    tune_for_streaming()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    del a, b
    assert gc.collect() >= 2


@pytest.mark.usefixtures("restore_gc")
def test_a_tuned_block_leaves_the_collector_as_it_found_it() -> None:
    gc.set_threshold(700, 10, 10)
    with tuned_for_streaming():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
