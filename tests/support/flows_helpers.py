"""Generate multi-site visitor days and compute their flows independently of the SQL.

Definitions (docs/flows.md): a session spans [first event, stop or last event]; a client
is present at a site in every local hour a session overlaps; its visits of a day, ordered
by first presence (ties by site), form legs counted in the hour of arrival; dwell is the
duration of sessions that ended (stop, or last event + timeout <= newest event time).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from core.settings import Settings
from schemas.topics import KafkaTopic
from schemas.wifi import WifiSessionData
from tests.support.wifi_helpers import WifiEvent, make_event

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY_START = datetime(2025, 3, 1, 8, 0, tzinfo=TZ)


def visitor_day(
    n_clients: int, sites: list[str], seed: int = 1, start: datetime = DAY_START
) -> list[WifiEvent]:
    """Each client visits 1-4 sites in turn; sessions of 1-4 events, 80 % with a stop."""
    rng = random.Random(seed)
    events: list[WifiEvent] = []
    for c in range(n_clients):
        client = f"{rng.randrange(16**16):016x}"
        randomized = rng.random() < 0.2
        t = start + timedelta(minutes=rng.uniform(0, 240))
        for v, site in enumerate(rng.sample(sites, rng.randint(1, min(4, len(sites))))):
            session = f"c{c}v{v}"
            kinds = ["start"] + ["interim"] * rng.randrange(0, 3)
            kinds += ["stop"] if rng.random() < 0.8 else []
            for kind in kinds:
                ev = make_event(kind, site, session, client, t)
                if randomized:
                    data = WifiSessionData(**{**ev.data.model_dump(), "randomized_mac": True})
                    ev = ev.model_copy(update={"data": data})
                events.append(ev)
                t += timedelta(minutes=rng.uniform(1, 40))
            t += timedelta(minutes=rng.uniform(5, 60))
    events.sort(key=lambda e: e.event_time)
    return events


def _hour(t: datetime) -> datetime:
    return t.astimezone(TZ).replace(minute=0, second=0, microsecond=0)


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL percentile_cont)."""
    s = sorted(values)
    pos = p * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def expected_flows(
    events: list[WifiEvent], timeout: timedelta
) -> tuple[dict[tuple[str, datetime], tuple], dict[tuple[datetime, str, str], tuple[int, int]]]:
    """(site, hour) -> (uv, uv_stable, new, returning, dwell_n, median, p90) and the raw OD
    cells (hour, origin, destination) -> (clients, clients_stable)."""
    sessions: dict[tuple[str, str], dict] = {}
    for e in {(e.event_time, e.id): e for e in events}.values():
        s = sessions.setdefault(
            (e.site, e.data.session_id),
            {
                "client": e.data.client_id,
                "start": e.event_time,
                "last": e.event_time,
                "stop": None,
                "rand": False,
            },
        )
        s["start"] = min(s["start"], e.event_time)
        s["last"] = max(s["last"], e.event_time)
        s["rand"] |= e.data.randomized_mac
        if e.type == "wifi.session.stop":
            s["stop"] = e.event_time if s["stop"] is None else min(s["stop"], e.event_time)
    wm = max(e.event_time for e in events)
    present: dict[tuple[str, date, str], dict] = {}
    dwell: dict[tuple[str, datetime], list[float]] = defaultdict(list)
    for (site, _), s in sessions.items():
        end = s["stop"] or s["last"]
        if s["stop"] is not None or s["last"] + timeout <= wm:
            dwell[(site, _hour(end))].append((end - s["start"]).total_seconds())
        h = _hour(s["start"])
        while h <= end:
            first = max(s["start"], h)
            p = present.setdefault(
                (site, h.date(), s["client"]), {"first": first, "hours": set(), "rand": False}
            )
            p["first"] = min(p["first"], first)
            p["hours"].add(h)
            p["rand"] |= s["rand"]
            h += timedelta(hours=1)
    hourly: dict[tuple[str, datetime], list] = {}
    for (site, _, _), p in present.items():
        for h in p["hours"]:
            row = hourly.setdefault((site, h), [0, 0, 0])
            row[0] += 1
            row[1] += not p["rand"]
            row[2] += _hour(p["first"]) == h
    out = {}
    for (site, h), (uv, uvs, new) in hourly.items():
        d = dwell.get((site, h), [])
        med = percentile(d, 0.5) if d else None
        p90 = percentile(d, 0.9) if d else None
        out[(site, h.astimezone(UTC))] = (uv, uvs, new, uv - new, len(d), med, p90)
    visits: dict[tuple[date, str], list] = defaultdict(list)
    for (site, day, client), p in present.items():
        visits[(day, client)].append((p["first"], site, p["rand"]))
    od: dict[tuple[datetime, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for seq in visits.values():
        seq.sort(key=lambda v: (v[0], v[1]))
        for (_, origin, _), (first, dest, rand) in pairwise(seq):
            cell = od[(_hour(first).astimezone(UTC), origin, dest)]
            cell[0] += 1
            cell[1] += not rand
    return out, {k: (a, b) for k, (a, b) in od.items()}


def start_flows(settings: Settings, log_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``tourpulse flows`` as a subprocess with short Kafka group timeouts."""
    env = dict(os.environ)
    env.update(
        TP_TOPIC_NAMESPACE=str(settings.topic_namespace),
        TP_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        DATABASE_URL=settings.database_url,
        TP_DATA_DIR=str(settings.data_dir),
    )
    argv = [
        sys.executable,
        "-m",
        "infra.cli",
        "flows",
        "--metrics-port",
        "0",
        "--rebalance-timeout",
        "6",
        "--group-session-timeout",
        "6",
        "--heartbeat-interval",
        "1",
        "--recompute-interval",
        "1",
        *extra,
    ]
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def flows_topics(settings: Settings) -> list[str]:
    return [
        settings.kafka_topic(t)
        for t in (
            KafkaTopic.WIFI_SESSION,
            KafkaTopic.FLOWS_HOURLY,
            KafkaTopic.OCCUPANCY_LIVE,
            KafkaTopic.OCCUPANCY_FUSED,
            KafkaTopic.CAMERA_METADATA,
            KafkaTopic.DEVICE_AVAILABILITY,
        )
    ]
