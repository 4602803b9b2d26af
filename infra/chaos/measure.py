"""What a fault run is judged by, read from the real stores (PostgreSQL rows, Kafka offsets).

Stored events are identified by what the sender sent (session id, report type), not by
event id: a report stored twice under two ids is a duplicate, and one stored under no id
is lost, whatever ids the edge made up. Rollups are checked against a recomputation from
the raw rows (same rules as the worker: a session spans first event -> stop, or last event
+ the session timeout; a minute counts the distinct clients whose span overlaps it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta

import psycopg

from infra.chaos.nas import Key

MINUTE = timedelta(minutes=1)


def stored_counts(db_url: str, names: Mapping[str, str]) -> dict[Key, int]:
    """Rows per (NAS session id, type) for the sessions of one run.

    ``names`` maps each stored (pseudonymous) session id back to the NAS's Acct-Session-Id:
    the agent never publishes the NAS's own id, which may embed a MAC or an IP.
    """
    with psycopg.connect(db_url, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT session_id, type, count(*) FROM wifi_session_events "
            "WHERE session_id = ANY(%s) GROUP BY 1, 2",
            (list(names),),
        ).fetchall()
    return {(names[str(s)], str(t)): int(n) for s, t, n in rows}


def dead_letters(bootstrap: str, topic: str) -> int:
    """Records ever written to the dead-letter topic (sum of partition high watermarks)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from core.kafka_client import as_kafka

    consumer = Consumer(
        as_kafka(bootstrap).librdkafka(**{"group.id": "chaos-probe", "log_level": 0})
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        total = 0
        for p in meta.partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high
        return total
    except KafkaException:
        return -1
    finally:
        consumer.close()


def rollup_mismatches(db_url: str, site: str, session_timeout: timedelta) -> int:
    """Minutes of ``site`` whose stored rollup differs from the recomputation (0 = exact)."""
    with psycopg.connect(db_url, connect_timeout=5, options="-c timezone=UTC") as conn:
        raw = conn.execute(
            "SELECT session_id, client_id, type, event_time FROM wifi_session_events "
            "WHERE site = %s",
            (site,),
        ).fetchall()
        stored = {
            r[0]: (int(r[1]), int(r[2]), int(r[3]))
            for r in conn.execute(
                "SELECT minute, connected, new_sessions, ended_sessions FROM occupancy_minute "
                "WHERE site = %s",
                (site,),
            )
        }
    expected = _recompute(raw, session_timeout)
    return sum(1 for minute, value in expected.items() if stored.get(minute) != value)


def _recompute(
    raw: list[tuple[str, str, str, datetime]], timeout: timedelta
) -> dict[datetime, tuple[int, int, int]]:
    clients: dict[str, str] = {}
    first_at: dict[str, datetime] = {}
    last_at: dict[str, datetime] = {}
    stops: dict[str, datetime] = {}
    for session, client, kind, at in raw:
        clients[session] = client
        first_at[session] = min(first_at.get(session, at), at)
        last_at[session] = max(last_at.get(session, at), at)
        if kind == "wifi.session.stop":
            stops[session] = min(stops.get(session, at), at)
    if not raw:
        return {}
    periods = [(clients[s], first_at[s], stops.get(s) or last_at[s] + timeout) for s in clients]
    new: defaultdict[datetime, int] = defaultdict(int)
    ended: defaultdict[datetime, int] = defaultdict(int)
    for _, a, b in periods:
        new[_minute(a)] += 1
        ended[_minute(b)] += 1
    by_minute: dict[datetime, tuple[int, int, int]] = {}
    m, last = _minute(min(first_at.values())), _minute(max(last_at.values()))
    while m <= last:
        nxt = m + MINUTE
        connected = len({c for c, a, b in periods if a < nxt and b > m})
        by_minute[m] = (connected, new[m], ended[m])
        m = nxt
    return by_minute


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)
