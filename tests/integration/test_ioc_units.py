"""IOC pieces without the stack: the signing-secret policy, roles, credentials checks,
NGSI-LD entity shape, and the multi-topic partition numbering of the live feed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from api.ioc.config import InsecureConfig, IocSettings, resolve_secret
from api.ioc.ngsi import crowd_flow_entity
from api.ioc.users import Role, UserError, check_new_credentials
from api.live.consumer import FeedTopic, LiveFeed, parse_occupancy
from api.live.hub import Hub
from api.metrics import ApiMetrics
from core.settings import Settings
from device_configs.loader import load_device_configs


def test_production_refuses_a_missing_or_weak_secret(tmp_path: Path) -> None:
    with pytest.raises(InsecureConfig, match="not set"):
        resolve_secret(IocSettings(environment="production"), tmp_path)
    for weak in ("changeme", "x" * 31):
        with pytest.raises(InsecureConfig, match="too weak"):
            resolve_secret(IocSettings(environment="production", jwt_secret=weak), tmp_path)
    strong = "s" * 40
    assert resolve_secret(IocSettings(environment="production", jwt_secret=strong), tmp_path) == (
        strong
    )
    assert not (tmp_path / "ioc_jwt_secret").exists()


def test_development_generates_and_keeps_a_private_secret(tmp_path: Path) -> None:
    data_dir = tmp_path / ".tourpulse"
    first = resolve_secret(IocSettings(), data_dir)
    assert len(first) >= 32
    assert resolve_secret(IocSettings(), data_dir) == first  # survives a restart
    mode = stat.S_IMODE((data_dir / "ioc_jwt_secret").stat().st_mode)
    assert mode == 0o600


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert not Role.OPERATOR.allows(Role.ADMIN)


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("A", "long enough", "username"),
        ("has space", "long enough", "username"),
        ("ok-user", "short", "password"),
        ("ok-user", "x" * 1025, "password"),
    ],
)
def test_bad_credentials_are_refused(username: str, password: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_new_credentials(username, password)


def test_crowd_flow_entity_reports_share_and_congestion() -> None:
    site = load_device_configs(Settings().device_configs).site("ben-thanh-market")
    fused = {
        "site": site.id,
        "people": 950.4,
        "low": 900,
        "high": 1000.2,
        "capacity": 1000,
        "degraded": True,
        "as_of": "2026-03-14T09:00:00+07:00",
    }
    entity = crowd_flow_entity(site, fused)
    assert entity["peopleCount"] == {
        "type": "Property",
        "value": 950,
        "observedAt": "2026-03-14T02:00:00Z",
    }
    assert entity["occupancy"]["value"] == 0.95
    assert entity["congested"]["value"] is True
    assert entity["degraded"]["value"] is True
    assert "estimateConfidence" not in entity  # a message from before the field
    fused |= {"source": "wifi_prior", "confidence": "low", "flags": ["wifi_silent"]}
    entity = crowd_flow_entity(site, fused)
    assert entity["estimateSource"]["value"] == "wifi_prior"
    assert entity["estimateConfidence"]["value"] == "low"
    assert entity["sensorFlags"]["value"] == ["wifi_silent"]
    assert entity["location"]["value"]["coordinates"] == [site.lon, site.lat]


def test_feed_numbers_partitions_across_topics() -> None:
    metrics = ApiMetrics()
    extra = [
        FeedTopic("ns.fused", "fused", parse_occupancy),
        FeedTopic("ns.alerts", "alert", parse_occupancy, keep_latest=False),
    ]
    feed = LiveFeed("127.0.0.1:1", "ns.occ", Hub(metrics, 10, 10), metrics, 0, extra)
    assert feed.feed_partition("ns.occ", 3) == 3  # single-topic ids stay as they were
    assert feed.feed_partition("ns.alerts", 1) == 2001
    tp = feed.kafka_partition(2001)
    assert (tp.topic, tp.partition) == ("ns.alerts", 1)
    assert feed.topic_of(1002).kind == "fused"
