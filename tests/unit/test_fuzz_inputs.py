"""Every network input survives fuzzing: no crash, every input accepted or rejected with a
counted reason, bounded memory. Short here (a few hundred inputs per kind); the 10,000+
per kind run is ``tourpulse bench security``."""

from __future__ import annotations

import pytest

from infra.bench.fuzz_inputs import TARGETS, mutate, run_kind

PER_KIND = 400
#: A parser that kept what it saw would grow far beyond this over a few hundred inputs.
MAX_RSS_GROWTH_KIB = 64 * 1024


def test_mutator_is_deterministic_and_changes_inputs() -> None:
    import random

    seed = b'{"a": [1, 2, 3]}'
    first = [mutate(seed, random.Random("x")) for _ in range(5)]
    assert first == [mutate(seed, random.Random("x")) for _ in range(5)]
    assert any(m != seed for m in first)


@pytest.mark.parametrize(
    "kind",
    [k for k in TARGETS],
)
def test_network_input_never_crashes_and_every_rejection_is_counted(kind: str) -> None:
    result = run_kind(kind, PER_KIND)
    assert result.inputs == PER_KIND
    assert result.crash_count == 0, result.crashes[:3]
    assert result.uncounted_count == 0, result.uncounted[:3]
    assert result.accepted >= 1 and result.rejected >= PER_KIND // 4
    assert result.rss_growth_kib < MAX_RSS_GROWTH_KIB
