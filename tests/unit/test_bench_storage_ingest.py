"""The storage bench's ingest rounds: each round must be new sessions of new clients.

The first version re-used every session id a day later, so the sink merged them into
day-long sessions whose rollups grew every round and the full run timed out; the ratio it
printed measured that, not the storage.
"""

from __future__ import annotations

from core.settings import DEVICE_CONFIG_DIR
from device_configs.loader import load_device_configs
from infra.bench.storage_ingest import ROUND_SHIFT, for_round, simulated_events
from schemas.codec import decode_event, encode_event


def test_rounds_are_new_sessions_of_new_clients_an_hour_apart_with_valid_events() -> None:
    base = simulated_events(load_device_configs(DEVICE_CONFIG_DIR), 300)
    assert for_round(base, 0) == base
    one, two = for_round(base, 1), for_round(base, 2)
    for later in (one, two):
        assert {e.data.session_id for e in later}.isdisjoint(e.data.session_id for e in base)
        assert {e.data.client_id for e in later}.isdisjoint(e.data.client_id for e in base)
        assert {e.id for e in later}.isdisjoint(e.id for e in base)
    assert {e.data.session_id for e in one}.isdisjoint(e.data.session_id for e in two)
    # Same shapes: one session stays one session, times move by whole rounds.
    assert len({e.data.session_id for e in one}) == len({e.data.session_id for e in base})
    assert [e.event_time - b.event_time for e, b in zip(two, base, strict=True)] == [
        2 * ROUND_SHIFT
    ] * len(base)
    for event in two:  # still valid under the contract (what the worker would decode)
        assert decode_event(encode_event(event)) == event
