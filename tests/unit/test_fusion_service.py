"""FusionService on the real HCMC configs: every site gets an estimate with its source,
confidence and flags, including a namespaced deployment's ``<namespace>-<site>`` ids."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY

from core.settings import DEVICE_CONFIG_DIR
from device_configs import load_device_configs
from device_configs.namespace import with_namespace
from schemas.camera import CameraMetadataV1, VideoMetadata
from schemas.codec import encode_event
from schemas.stream_out import OccupancyUpdateV1
from stream.fusion.model import FusionParams
from stream.fusion.service import FusionService

SITE = "phu-hoa-dong-rice-paper-village"  # capacity 400, one camera, people_per_client 2.5


def _wifi(site: str, connected: int) -> bytes:
    now = datetime.now(UTC)
    return (
        OccupancyUpdateV1(site=site, connected=connected, as_of=now, emitted_at=now)
        .model_dump_json()
        .encode()
    )


def _implausible() -> float:
    return REGISTRY.get_sample_value("tp_fusion_calibration_implausible_total") or 0.0


def test_namespaced_site_is_judged_by_its_config_and_a_disagreeing_camera_is_refused() -> None:
    configs = with_namespace(load_device_configs(DEVICE_CONFIG_DIR), "t1")
    assert with_namespace(configs, None) is configs
    now = [0.0]
    service = FusionService(configs, FusionParams(), clock=lambda: now[0])
    site = f"t1-{SITE}"
    service.on_wifi(_wifi(site, 160))
    (first,) = service.tick()
    assert first.site == site and first.capacity == 400 and first.people == 400.0
    assert first.source == "wifi_prior" and first.flags == [f"camera_offline:{site}-cam1"]
    assert first.confidence == "low" and first.low == 200.0 and first.high == 600.0

    refused = _implausible()
    emitted = []
    camera = CameraMetadataV1(
        site=site,
        device=f"{site}-cam1",
        source="test",
        event_time=datetime.now(UTC),
        data=VideoMetadata(zones={"path": 5}, counter="detector"),
    )
    for _ in range(15):  # a pedestrian clip: 5 people where 160 phones are connected
        now[0] += 1.0
        service.on_wifi(_wifi(site, 160))
        service.on_camera(encode_event(camera))
        emitted += service.tick()
    assert _implausible() - refused == 15
    state = service.sites[site]
    assert state.calibration is None and state.camera_disagrees
    latest = emitted[-1]
    assert latest.people == 400.0 and latest.flags == ["camera_disagrees"]
