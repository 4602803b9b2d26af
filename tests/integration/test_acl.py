"""`tourpulse devices acl` against a real Mosquitto: a device cannot publish as another site."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from device_configs.acl import mosquitto_hash
from infra.cli import main
from tests.support.edge_wifi_support import PrivateMosquitto, puback_reason, write_device_configs


def test_hash_format_is_mosquitto_pbkdf2() -> None:
    h = mosquitto_hash("pw", salt=b"0123456789ab")
    assert h.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(h.split("$")) == 5


def _generate(tmp_path: Path, fresh: bool = True) -> tuple[Path, dict[str, str]]:
    if fresh:
        write_device_configs(tmp_path)
    cfg, secrets = tmp_path / "device_configs", tmp_path / "secrets.yaml"
    out = tmp_path / "mqtt"
    rc = main(
        [
            "devices",
            "acl",
            "--config",
            str(cfg),
            "--secrets",
            str(secrets),
            "--out",
            str(out),
            "--service",
            "tp-gateway",
            "--generate-missing",
        ]
    )
    assert rc == 0
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "passwd").st_mode) == 0o600
    return out, yaml.safe_load(secrets.read_text())


def test_acl_lists_only_own_topics(tmp_path: Path) -> None:
    out, secrets = _generate(tmp_path)
    acl = (out / "acl").read_text()
    block = acl.split("user btm-wifi\n")[1].split("\n\n")[0]
    assert block.splitlines() == [  # its own streams, never its own cmd (read-only)
        "topic write tp/v1/ben-thanh-market/wifi/btm-wifi/availability",
        "topic write tp/v1/ben-thanh-market/wifi/btm-wifi/heartbeat",
        "topic write tp/v1/ben-thanh-market/wifi/btm-wifi/presence",
        "topic write tp/v1/ben-thanh-market/wifi/btm-wifi/session",
        "topic read tp/v1/ben-thanh-market/wifi/btm-wifi/cmd",
    ]
    passwd = (out / "passwd").read_text()
    assert secrets["mqtt-btm-wifi"] not in passwd and "btm-wifi:$7$" in passwd
    # Running again keeps the passwords (the secrets file is the source of truth).
    _, again = _generate(tmp_path, fresh=False)
    assert again["mqtt-btm-wifi"] == secrets["mqtt-btm-wifi"]


@pytest.mark.integration
def test_real_mosquitto_refuses_publishing_under_another_site(tmp_path: Path) -> None:
    out, secrets = _generate(tmp_path)
    broker = PrivateMosquitto(
        tmp_path,
        f"allow_anonymous false\npassword_file {out / 'passwd'}\nacl_file {out / 'acl'}\n",
    ).start()
    pw = secrets["mqtt-btm-wifi"]
    try:
        own = puback_reason(
            broker.port, "tp/v1/ben-thanh-market/wifi/btm-wifi/session", b"{}", "btm-wifi", pw
        )
        assert not own.is_failure, own
        other_site = puback_reason(
            broker.port, "tp/v1/notre-dame-cathedral/wifi/btm-wifi/session", b"{}", "btm-wifi", pw
        )
        assert other_site.is_failure and other_site.getName() == "Not authorized"
        other_device = puback_reason(
            broker.port,
            "tp/v1/ben-thanh-market/ap/ben-thanh-market-ap01/session",
            b"{}",
            "btm-wifi",
            pw,
        )
        assert other_device.is_failure
        wrong_pw = puback_reason(
            broker.port, "tp/v1/ben-thanh-market/wifi/btm-wifi/session", b"{}", "btm-wifi", "x"
        )
        assert wrong_pw.is_failure  # CONNACK refused: bad user name or password
    finally:
        broker.stop()
