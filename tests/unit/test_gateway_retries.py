"""The gateway's queue of records to produce again after a failed delivery."""

from __future__ import annotations

from stream.gateway.retries import RetryQueue


class Ticks:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_records_come_back_after_the_delay_in_the_order_they_failed() -> None:
    clock = Ticks()
    queue: RetryQueue[str] = RetryQueue(1.0, clock)
    queue.add("a")
    clock.t += 0.5
    queue.add("b")
    assert queue.due() == [] and len(queue) == 2
    clock.t += 0.6
    assert queue.due() == ["a"]  # b has waited 0.6 s
    clock.t += 0.5
    queue.add("c")
    assert queue.due() == ["b"]
    assert queue.due(force=True) == ["c"] and len(queue) == 0  # a draining stop takes all
