"""The Wi-Fi simulator's generator: determinism, realism and the contract (no network)."""

from __future__ import annotations

import csv
import io
import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.settings import DEVICE_CONFIG_DIR
from device_configs.loader import load_device_configs
from device_configs.models import DeviceConfigs, VenueKind
from edge.simulator.auckland import LEISURE_WEEKEND, WATERFRONT_SENSORS, hourly_shape
from edge.simulator.generator import SimConfig, WifiEvent, WifiSessionGenerator, edge_device_id
from edge.simulator.identity import SimulatedClockPseudonymiser
from edge.simulator.profiles import PROFILES
from schemas.codec import decode_event, encode_event
from schemas.topics import DeviceKind, MqttStream, MqttTopic
from schemas.wifi import WifiSessionInterimV1, WifiSessionStartV1, WifiSessionStopV1

HCMC = ZoneInfo("Asia/Ho_Chi_Minh")
#: A Saturday, 00:00 local time.
SATURDAY = datetime(2026, 3, 7, 0, 0, tzinfo=HCMC)
MARKET, MUSEUM, WALKING = "ben-thanh-market", "war-remnants-museum", "nguyen-hue-walking-street"
SMALL_VILLAGE = "phu-hoa-dong-rice-paper-village"


@pytest.fixture(scope="module")
def configs() -> DeviceConfigs:
    return load_device_configs(DEVICE_CONFIG_DIR)


@pytest.fixture(scope="module")
def pseudonymise(tmp_path_factory: pytest.TempPathFactory) -> SimulatedClockPseudonymiser:
    return SimulatedClockPseudonymiser(tmp_path_factory.mktemp("sim-keys"))


def _subset(configs: DeviceConfigs, *site_ids: str) -> DeviceConfigs:
    return configs.model_copy(update={"sites": [s for s in configs.sites if s.id in site_ids]})


def _until(gen: WifiSessionGenerator, end: datetime) -> Iterator[WifiEvent]:
    return itertools.takewhile(lambda e: e.event_time < end, gen)


@pytest.fixture(scope="module")
def saturday(configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser) -> list[WifiEvent]:
    """A market, a museum and the walking street from Saturday 00:00 to Sunday 08:00."""
    gen = WifiSessionGenerator(
        _subset(configs, MARKET, MUSEUM, WALKING),
        SimConfig(start=SATURDAY, seed=11, scale=0.1, interim_s=1800),
        pseudonymise,
    )
    return list(_until(gen, SATURDAY + timedelta(hours=32)))


def _first(events: list[WifiEvent], n: int = 5) -> list[bytes]:
    return [encode_event(e) for e in events[:n]]


def test_same_seed_gives_the_same_events_ids_included(
    configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser
) -> None:
    def run(seed: int) -> list[bytes]:
        cfg = SimConfig(start=SATURDAY + timedelta(hours=10), seed=seed)
        gen = WifiSessionGenerator(configs, cfg, pseudonymise)
        return [encode_event(e) for e in itertools.islice(gen, 2000)]

    first = run(5)
    assert first == run(5)
    assert first != run(6)
    assert len({decode_event(raw).id for raw in first}) == len(first)


def test_a_site_s_events_do_not_depend_on_which_other_sites_run(
    configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser
) -> None:
    cfg = SimConfig(start=SATURDAY + timedelta(hours=10), seed=3)
    alone = WifiSessionGenerator(_subset(configs, MUSEUM), cfg, pseudonymise)
    together = WifiSessionGenerator(_subset(configs, MUSEUM, MARKET), cfg, pseudonymise)
    expected = [encode_event(e) for e in itertools.islice(alone, 300)]
    mixed = (e for e in together if e.site == MUSEUM)
    assert [encode_event(e) for e in itertools.islice(mixed, 300)] == expected


def test_every_event_satisfies_the_contract_and_round_trips(saturday: list[WifiEvent]) -> None:
    types = Counter(type(e) for e in saturday)
    assert set(types) == {WifiSessionStartV1, WifiSessionInterimV1, WifiSessionStopV1}
    for event in saturday[::3]:  # a third is plenty and keeps the test quick
        assert decode_event(encode_event(event)) == event
        assert event.source == "sim.wifi"
        assert event.device == edge_device_id(event.site)
        assert event.data.ap.startswith(event.site + "-ap")
        topic = MqttTopic.build(event.site, DeviceKind.WIFI, event.device, MqttStream.SESSION)
        assert MqttTopic.parse(str(topic)) == topic
    times = [e.event_time for e in saturday]
    assert times == sorted(times)


def _starts_by_local_hour(events: list[WifiEvent], site: str) -> Counter[int]:
    """Session starts per local hour on the Saturday only."""
    return Counter(
        e.event_time.astimezone(HCMC).hour
        for e in events
        if isinstance(e, WifiSessionStartV1)
        and e.site == site
        and e.event_time < SATURDAY + timedelta(days=1)
    )


def _busiest_block(per_hour: Counter[int], hours: int = 3) -> int:
    """First hour of the busiest ``hours``-long block (blocks smooth out Poisson noise)."""
    return max(range(0, 24, hours), key=lambda h: sum(per_hour[h + i] for i in range(hours)))


def test_daily_curves_are_quiet_at_night_and_peak_when_the_venue_does(
    saturday: list[WifiEvent],
) -> None:
    market = _starts_by_local_hour(saturday, MARKET)
    walking = _starts_by_local_hour(saturday, WALKING)
    museum = _starts_by_local_hour(saturday, MUSEUM)
    assert sum(market[h] for h in range(0, 6)) == 0  # the market is closed at night
    assert sum(museum[h] for h in (*range(0, 8), *range(17, 24))) == 0
    assert _busiest_block(market) in (9, 12)  # late morning to early afternoon
    assert _busiest_block(walking) in (18, 21)  # the evening stroll
    assert walking[4] * 3 < max(walking.values())  # open all night, yet quiet at 4 am


def test_weekend_brings_more_visitors_than_a_weekday(
    configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser
) -> None:
    def starts(day: datetime) -> int:
        cfg = SimConfig(start=day, seed=2, scale=0.2, interim_s=3600)
        gen = WifiSessionGenerator(_subset(configs, MUSEUM), cfg, pseudonymise)
        events = _until(gen, day + timedelta(days=1))
        return sum(isinstance(e, WifiSessionStartV1) for e in events)

    weekday, weekend = starts(SATURDAY - timedelta(days=3)), starts(SATURDAY)
    assert weekend > weekday * 1.15  # museum weekend factor 1.4, minus Poisson noise


def test_dwell_medians_follow_the_venue_profile(saturday: list[WifiEvent]) -> None:
    for site, venue in ((MARKET, VenueKind.MARKET), (MUSEUM, VenueKind.MUSEUM)):
        dwell_min = [
            e.data.session_seconds / 60
            for e in saturday
            if isinstance(e, WifiSessionStopV1) and e.site == site and e.data.session_seconds
        ]
        assert len(dwell_min) > 100
        configured = PROFILES[venue].dwell_median_min
        assert configured * 0.8 <= statistics.median(dwell_min) <= configured * 1.2


def test_randomised_macs_and_silent_endings_have_the_configured_shares(
    saturday: list[WifiEvent],
) -> None:
    starts = [e for e in saturday if isinstance(e, WifiSessionStartV1) and e.site == MARKET]
    stops = {e.data.session_id for e in saturday if isinstance(e, WifiSessionStopV1)}
    randomized = sum(e.data.randomized_mac for e in starts) / len(starts)
    assert 0.33 <= randomized <= 0.47  # configured 0.4
    # The market closes at 19:00 and nobody stays 12 h, so every session has ended by now.
    silent = sum(e.data.session_id not in stops for e in starts) / len(starts)
    assert 0.02 <= silent <= 0.09  # configured 0.05


def test_sessions_roam_and_their_counters_only_grow(saturday: list[WifiEvent]) -> None:
    by_session: defaultdict[tuple[str, str], list[WifiEvent]] = defaultdict(list)
    for e in saturday:
        by_session[(e.site, e.data.session_id)].append(e)
    roamed = 0
    for events in by_session.values():
        assert isinstance(events[0], WifiSessionStartV1)
        # The pseudonym is stable within a key day (the key rotates at 04:00 local).
        key_days = {(e.event_time.astimezone(HCMC) - timedelta(hours=4)).date() for e in events}
        assert len({e.data.client_id for e in events}) == len(key_days)
        rx = [e.data.rx_bytes or 0 for e in events]
        secs = [e.data.session_seconds or 0 for e in events]
        assert rx == sorted(rx) and secs == sorted(secs)
        assert all(-95 <= (e.data.signal_dbm or 0) <= -30 for e in events)
        roamed += len({e.data.ap for e in events}) > 1
        if len(events) > 1 and isinstance(events[1], WifiSessionInterimV1):
            assert events[1].event_time - events[0].event_time == timedelta(seconds=1800)
    assert roamed > 10


def test_occupancy_stays_within_capacity_and_turns_visitors_away_when_full(
    configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser
) -> None:
    def peak_and_rejected(scale: float) -> tuple[float, int]:
        cfg = SimConfig(start=SATURDAY + timedelta(hours=7), seed=4, scale=scale, interim_s=3600)
        gen = WifiSessionGenerator(_subset(configs, SMALL_VILLAGE), cfg, pseudonymise)
        cap = gen.capacity()[SMALL_VILLAGE]
        for _ in _until(gen, SATURDAY + timedelta(hours=17)):
            assert gen.occupancy()[SMALL_VILLAGE] <= cap
        site = configs.site(SMALL_VILLAGE)
        assert cap <= site.capacity_persons
        return gen.peak_occupancy()[SMALL_VILLAGE] / cap, gen.rejected()[SMALL_VILLAGE]

    fill, rejected = peak_and_rejected(1.0)
    assert 0.3 < fill < 1.0 and rejected == 0  # a realistic busy day, not a full one
    fill, rejected = peak_and_rejected(5.0)
    assert fill == 1.0 and rejected > 0


def test_warmup_means_sites_are_not_empty_at_the_start(
    configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser
) -> None:
    noon = SATURDAY + timedelta(hours=12)
    cfg = SimConfig(start=noon, seed=8, scale=0.2, warmup=timedelta(hours=3))
    gen = WifiSessionGenerator(_subset(configs, MARKET), cfg, pseudonymise)
    first = next(iter(gen))
    assert first.event_time >= noon
    assert gen.occupancy()[MARKET] > 20


def test_site_prefix_isolates_published_ids(
    configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser
) -> None:
    cfg = SimConfig(start=SATURDAY + timedelta(hours=10), site_prefix="t0123abcd")
    event = next(iter(WifiSessionGenerator(_subset(configs, MARKET), cfg, pseudonymise)))
    assert event.site == f"t0123abcd-{MARKET}"
    assert event.device == f"t0123abcd-{MARKET}-edge"


def test_client_ids_come_from_the_edge_pseudonymiser_and_rotate_daily(tmp_path: Path) -> None:
    pseudo = SimulatedClockPseudonymiser(tmp_path)
    mac = bytes.fromhex("f2aabbccddee")
    day1 = pseudo(mac, SATURDAY + timedelta(hours=10))
    assert day1.randomized and len(day1.client_id) == 32
    assert pseudo(mac, SATURDAY + timedelta(hours=20)) == day1
    assert pseudo(mac, SATURDAY + timedelta(hours=30)).client_id != day1.client_id
    assert (tmp_path / "keys" / "sim.key").exists()


def test_auckland_shape_derivation_matches_the_shipped_constants() -> None:
    """The derivation on a tiny synthetic table, and the constants' basic sanity."""
    header = ["date", "hour", "year", *WATERFRONT_SENSORS]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for day in ("2024-03-02", "2024-03-04"):  # a Saturday and a Monday (ignored)
        for hour in range(24):
            value = 0 if day.endswith("04") else hour + 1
            writer.writerow([day, f"{hour}:00-{hour}:59", "2024", value, value * 3, ""])
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    shape = hourly_shape(rows, WATERFRONT_SENSORS)
    assert shape[23] == 1.0 and shape[0] == round(1 / 24, 3)
    assert max(LEISURE_WEEKEND) == 1.0 and LEISURE_WEEKEND[4] < 0.1 < LEISURE_WEEKEND[12]


def test_bad_config_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimConfig(start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="randomized_share"):
        SimConfig(start=datetime(2026, 1, 1, tzinfo=UTC), randomized_share=1.5)


def test_a_surge_fills_its_site_up_to_capacity_and_leaves_others_alone(
    configs: DeviceConfigs, pseudonymise: SimulatedClockPseudonymiser
) -> None:
    def peaks(surges: dict[str, float]) -> tuple[dict[str, int], dict[str, int]]:
        cfg = SimConfig(start=SATURDAY + timedelta(hours=1), seed=4, surges=surges)
        gen = WifiSessionGenerator(_subset(configs, MUSEUM, SMALL_VILLAGE), cfg, pseudonymise)
        for _ in _until(gen, SATURDAY + timedelta(hours=3)):  # at night: village closed
            pass
        return gen.peak_occupancy(), gen.capacity()

    calm, capacity = peaks({})
    surged, _ = peaks({SMALL_VILLAGE: 3.0})
    assert surged[SMALL_VILLAGE] == capacity[SMALL_VILLAGE] > calm[SMALL_VILLAGE]
    assert surged[MUSEUM] == calm[MUSEUM]
    with pytest.raises(ValueError, match="surges"):
        SimConfig(start=SATURDAY, surges={MUSEUM: 0})
