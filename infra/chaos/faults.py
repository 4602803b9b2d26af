"""The faults, one run each on the same rig, and what every run reports.

A run: the NAS sends a fixed number of RADIUS reports at a fixed rate through the edge
agent (whose reply means "stored in the outbox"); after a third of them are answered the
fault is injected, held, and undone. ``recovery_s`` is from undoing the fault (for a
worker kill: from the kill, as nothing is restarted and the other worker must take over)
until every report acknowledged up to that moment is a row in PostgreSQL. The run ends
when every report is answered and stored, or nothing new arrives for ``SETTLE_S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.mqtt_client import MqttClientSettings, make_mqtt_client
from infra.chaos import measure
from infra.chaos.livefeed import LiveWatch
from infra.chaos.nas import NasLoad
from infra.chaos.rig import NAS_ID, SECRET, SITE, Rig
from schemas.topics import KafkaTopic

SETTLE_S = 90.0
SESSION_TIMEOUT = timedelta(seconds=900)


@dataclass(frozen=True)
class Fault:
    """``inject`` returns an ``undo``; ``hold_s`` is how long the fault lasts (full, quick)."""

    name: str
    inject: Callable[[Rig], Callable[[], None]]
    hold_s: tuple[float, float]
    needs_private: bool = False  # stops Kafka: full runs only (quick ones share it)
    rate: float = 150.0
    recovery_from_inject: bool = False
    needs_cluster: bool = False  # runs on the 3-broker rig (full runs only)
    watch_live: bool = False  # an SSE client of the API stays connected through the run
    #: Before the load starts; returns what to do after the run (e.g. a second gateway).
    setup: Callable[[Rig], Callable[[], None]] | None = None


def _restart(name: str) -> Callable[[Rig], Callable[[], None]]:
    def inject(rig: Rig) -> Callable[[], None]:
        rig.stop_component(name)
        return lambda: rig.start_component(name)

    return inject


def _gateway_kill(rig: Rig) -> Callable[[], None]:
    rig.procs["gateway"].kill9()
    return lambda: rig.procs["gateway"].start().wait_healthy(60)


def _worker_kill(rig: Rig) -> Callable[[], None]:
    """kill -9 the worker that owns the site's partition; the other one must take over."""
    rig.killed = _partition_owner(rig)
    rig.procs[rig.killed].kill9()
    return lambda: None


def _partition_owner(rig: Rig) -> str:
    names = ("worker1", "worker2")
    before = [rig.procs[n].metric("tp_worker_events_total") for n in names]
    time.sleep(1.0)  # the load is running: only the owner's stored-events counter moves
    grew = [
        rig.procs[n].metric("tp_worker_events_total") - b
        for n, b in zip(names, before, strict=True)
    ]
    return names[grew.index(max(grew))]


def _leader_kill(rig: Rig) -> Callable[[], None]:
    """kill -9 the broker leading the partition that carries the site's events."""
    leader, isr, replicas = rig.site_partition(rig.topic(KafkaTopic.WIFI_SESSION))
    rig.notes.update(killed_broker=leader, in_sync_replicas=isr, replicas=replicas)
    rig.kill_broker(leader)
    return lambda: None


GATEWAYS = ("gateway", "gateway2")
MESSAGES = "tp_gateway_messages_total"


def _second_gateway(rig: Rig) -> Callable[[], None]:
    """Two gateways in one ``$share`` group split the messages; removed after the run."""
    rig.add_gateway("gateway2").start().wait_healthy(60)
    rig.notes["gateway_messages_before"] = [rig.procs[n].metric(MESSAGES) for n in GATEWAYS]

    def remove() -> None:
        rig.procs.pop("gateway2").stop()
        rig.end_mqtt_session("gateway2")  # else it keeps its share of later runs' messages

    return remove


def _gateway_and_worker_kill(rig: Rig) -> Callable[[], None]:
    """kill -9 one of two gateways and the worker owning the site's partition, together.

    The surviving gateway and worker carry on. The dead gateway's share of ``$share``
    messages waits in its persistent session (MQTT 5 does not hand it to the other member),
    so it is restarted with the same client id after the hold, as its supervisor would.
    """
    base = rig.notes["gateway_messages_before"]
    assert isinstance(base, list)  # counters at setup: this run's messages per gateway
    now = [rig.procs[n].metric(MESSAGES) for n in GATEWAYS]
    rig.notes["gateway_messages_before"] = [a - b for a, b in zip(now, base, strict=True)]
    rig.killed = _partition_owner(rig)
    rig.procs["gateway2"].kill9()
    rig.procs[rig.killed].kill9()
    survivor = rig.procs["gateway"].metric(MESSAGES)

    def undo() -> None:
        rig.notes["survivor_messages_during_fault"] = (
            rig.procs["gateway"].metric(MESSAGES) - survivor
        )
        rig.procs["gateway2"].start().wait_healthy(60)

    return undo


def _uplink_cut(rig: Rig) -> Callable[[], None]:
    assert rig.proxy is not None
    rig.proxy.cut()
    return rig.proxy.restore


def _disk_full(rig: Rig) -> Callable[[], None]:
    """The outbox's disk fills while the uplink is down (the outbox must grow to hold on).

    With the uplink up the outbox reuses its freed pages and never needs new space, so a
    full disk alone tests nothing; during an outage every accepted report needs some.
    """
    assert rig.proxy is not None
    rig.proxy.cut()
    filler = rig.fill_disk()

    def undo() -> None:
        filler.unlink()
        assert rig.proxy is not None
        rig.proxy.restore()

    return undo


def _duplicates(rig: Rig) -> Callable[[], None]:
    """Re-deliver every event message the broker carried so far, plus bad input.

    A collector captures the agent's MQTT messages; each is published again as is (what a
    sender does after a lost PUBACK). The bad input: topics of the wrong shape and an
    unknown site, which must each end up dead-lettered (``expected_dead_letters``).
    """
    client = make_mqtt_client(MqttClientSettings(port=rig.cfg.mqtt_port), f"dup-{rig.ns}")
    captured: list[tuple[str, bytes]] = []
    client.on_message = lambda _c, _u, m: captured.append((m.topic, bytes(m.payload)))
    client.connect("127.0.0.1", rig.cfg.mqtt_port)
    client.loop_start()
    client.subscribe(f"tp/v1/{SITE}/wifi/+/session", qos=1)
    time.sleep(3.0)  # capture a few seconds of live traffic
    client.unsubscribe(f"tp/v1/{SITE}/wifi/+/session")
    for topic, payload in list(captured):
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    sample = captured[0][1] if captured else b"{}"
    for topic in BAD_TOPICS:
        client.publish(topic, sample, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    rig.duplicates_injected = len(captured)
    return lambda: None


#: Dead-lettered on purpose by the duplicate-delivery run: 5/7 levels, v2, unknown site.
BAD_TOPICS = (
    f"tp/v1/{SITE}/wifi/btm-wifi",
    f"tp/v1/{SITE}/wifi/btm-wifi/session/extra",
    f"tp/v2/{SITE}/wifi/btm-wifi/session",
    f"tp/v1/{SITE}/wifi/btm-wifi/nonsense",
    "tp/v1/no-such-site/wifi/btm-wifi/session",
)

#: In this order. The disk-full run comes first: later outages leave free pages in the
#: outbox file, which SQLite reuses without asking the full disk for space.
FAULTS = (
    Fault("outbox_disk_full", _disk_full, (10.0, 3.0)),
    Fault("mosquitto_restart", _restart("mqtt"), (12.5, 12.0)),
    Fault("gateway_kill9", _gateway_kill, (0.0, 0.0)),
    Fault("kafka_stop", _restart("kafka"), (20.0, 20.0), needs_private=True, watch_live=True),
    Fault("postgres_restart", _restart("postgres"), (5.0, 2.0)),
    Fault("worker_kill9", _worker_kill, (0.0, 0.0), recovery_from_inject=True),
    Fault("duplicate_delivery", _duplicates, (0.0, 0.0)),
    Fault("edge_uplink_outage", _uplink_cut, (600.0, 5.0), rate=50.0),
    Fault(
        "gateway_and_worker_kill9",
        _gateway_and_worker_kill,
        (10.0, 3.0),
        recovery_from_inject=True,
        setup=_second_gateway,
    ),
    Fault(
        "kafka_leader_kill", _leader_kill, (0.0, 0.0), recovery_from_inject=True, needs_cluster=True
    ),
)


def run_fault(rig: Rig, fault: Fault, count: int, say: Callable[[str], None]) -> dict[str, Any]:
    hold = fault.hold_s[0 if rig.full else 1]
    rate = fault.rate
    if fault.name == "edge_uplink_outage" and rig.full:
        count = max(count, int(rate * (hold + 30)))  # the outage spans the whole run
    count -= count % 3  # whole sessions: start, interim, stop
    dlq_topic = rig.settings.model_copy(update={"topic_namespace": rig.ns}).kafka_topic(
        KafkaTopic.DEAD_LETTER
    )
    dlq0 = measure.dead_letters(rig.kafka_bootstrap, dlq_topic)
    rig.duplicates_injected = 0
    rig.notes = {}
    teardown = fault.setup(rig) if fault.setup else None
    watch = None
    if fault.watch_live and "api" in rig.procs:
        watch = LiveWatch(f"http://127.0.0.1:{rig.procs['api'].port}").start()
    load = NasLoad(rig.radius_port, SECRET, NAS_ID, fault.name, count, rate).start()
    pre = min(count // 3, int(rate * 5))
    if fault.name == "edge_uplink_outage" and rig.full:
        pre = int(rate * 10)
    _wait(lambda: len(load.answered) >= pre, 120)
    say(f"{fault.name}: injecting after {len(load.answered)} acknowledged reports")
    answered_before = len(load.answered)
    undo = fault.inject(rig)
    t_injected = time.monotonic()  # inject may take a while (finding the worker to kill)
    time.sleep(hold)
    answered_during = len(load.answered) - answered_before
    t_undo_start = time.monotonic()
    undo()
    t_undo = t_injected if fault.recovery_from_inject else time.monotonic()
    restart_s = time.monotonic() - t_undo_start  # e.g. Kafka's own start-up time
    names = rig.stored_session_ids(load.sessions())
    recovery = _recovery(rig, names, load, t_undo)
    load.wait(SETTLE_S + count / rate)
    load.stop()
    acked = load.acked()
    stored = _settle(rig, names, acked)
    if rig.killed:  # back to two workers for the next fault
        rig.procs[rig.killed].start().wait_healthy(120)
        rig.killed = ""
    if teardown is not None:
        teardown()
    distinct = len(set(stored) & acked)
    mismatches = _rollups(rig)
    dlq = measure.dead_letters(rig.kafka_bootstrap, dlq_topic) - dlq0
    result: dict[str, Any] = {
        "sent": count,
        "acked": len(acked),
        "stored_distinct": distinct,
        "duplicates": sum(stored.values()) - len(stored),
        "lost_after_ack": len(acked) - distinct,
        "recovery_s": None if recovery is None else round(recovery, 1),
        "rollups_match": mismatches == 0,
        "rollup_minutes_wrong": mismatches,
        "dead_lettered": dlq,
        "fault_s": round(hold, 1),
        "restart_s": round(restart_s, 1),
        "acked_during_fault": answered_during,
        "retransmissions": load.retransmissions,
    }
    result.update(rig.notes)
    if watch is not None:
        watch.stop()
        result.update(watch.summary())
    if fault.name == "duplicate_delivery":
        result["duplicates_injected"] = rig.duplicates_injected
        result["expected_dead_letters"] = len(BAD_TOPICS)
    if load.error:
        result["sender_error"] = load.error
    say(f"{fault.name}: {result}")
    return result


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _recovery(rig: Rig, names: dict[str, str], load: NasLoad, since: float) -> float | None:
    """Seconds from ``since`` until the pipeline flows again end to end (None: never).

    Flowing again = every report acknowledged before ``since`` is stored, and so is one
    acknowledged after it (a consumer that is gone stores nothing new, whatever it had
    finished before).
    """
    before = {k for k, t in load.answered.copy().items() if t <= since}
    deadline = time.monotonic() + SETTLE_S * 2
    while time.monotonic() < deadline:
        after = {k for k, t in load.answered.copy().items() if t > since}
        try:
            stored = set(measure.stored_counts(rig.db_url, names))
        except Exception:  # PostgreSQL may still be starting after its restart
            stored = set()
        if before <= stored and (after & stored or len(load.answered) == load.count):
            return time.monotonic() - since
        time.sleep(0.1)
    return None


def _settle(rig: Rig, names: dict[str, str], acked: set[Any]) -> dict[Any, int]:
    """Stored rows once everything acknowledged is there or nothing changed for SETTLE_S."""
    last, changed = -1, time.monotonic()
    while True:
        stored = measure.stored_counts(rig.db_url, names)
        if acked <= set(stored):
            time.sleep(2.0)  # late duplicates still in flight would show up now
            return measure.stored_counts(rig.db_url, names)
        if len(stored) != last:
            last, changed = len(stored), time.monotonic()
        elif time.monotonic() - changed > SETTLE_S:
            return stored
        time.sleep(0.5)


def _rollups(rig: Rig) -> int:
    """Rollup minutes still wrong after the worker had 30 s to recompute them."""
    wrong = -1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        wrong = measure.rollup_mismatches(rig.db_url, SITE, SESSION_TIMEOUT)
        if wrong == 0:
            return 0
        time.sleep(1.0)
    return wrong
