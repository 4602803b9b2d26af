"""OpenWrt scripts: shellcheck, and real runs with stub uci / hostapd_cli / logger on PATH.

The ``logger`` stub (tests/edge_wifi_support.py) does what OpenWrt's logd does with
``system.log_ip``: it forwards the line as UDP syslog, here to a real agent syslog receiver,
so the test covers the whole path script → syslog → agent → contract event. Here the action
script is invoked exactly as ``hostapd_cli -a`` invokes it; tests/test_openwrt_hostapd.py
has the real ``hostapd_cli`` invoke it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.syslog import SyslogAdapter
from schemas.wifi import WifiSessionStartV1, WifiSessionStopV1
from tests.support.edge_wifi_support import ListSink, openwrt_env, write_agent_config

SCRIPTS = Path(__file__).resolve().parents[2] / "firmware_scripts" / "openwrt"
SHELLS = [s for s in (["sh"], ["busybox", "ash"]) if shutil.which(s[0])]


@pytest.fixture
def stub_path(tmp_path: Path) -> dict[str, str]:
    return openwrt_env(tmp_path, syslog_port=0)


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (apt-get install shellcheck)")
    files = [str(p) for p in sorted(SCRIPTS.iterdir())]
    proc = subprocess.run(["shellcheck", "-s", "sh", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[-1])
async def test_action_script_reports_to_agent(
    tmp_path: Path, stub_path: dict[str, str], shell: list[str]
) -> None:
    sink = ListSink()
    block = "syslog:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n"
    cfg = write_agent_config(tmp_path, 1, radius="radius:\n  enabled: false\n", syslog=block)
    agent = WifiAgent(load_config(cfg), sink)
    await agent.start()
    syslog = agent.adapters[0]
    assert isinstance(syslog, SyslogAdapter)
    env = {**stub_path, "TP_TEST_SYSLOG_PORT": str(syslog.port)}
    script = str(SCRIPTS / "tourpulse-hostapd-action.sh")

    def run(*args: str) -> None:
        subprocess.run([*shell, script, *args], env=env, check=True, timeout=30)

    try:
        await asyncio.to_thread(run, "wlan0", "AP-STA-CONNECTED", "da:a1:19:00:00:07")
        await asyncio.to_thread(run, "wlan0", "AP-STA-DISCONNECTED", "da:a1:19:00:00:07")
        await asyncio.to_thread(run, "wlan0", "WPS-PBC-ACTIVE", "")  # not ours: ignored
        await asyncio.to_thread(run, "wlan0", "AP-STA-CONNECTED", "not-a-mac")
        for _ in range(200):
            if len(sink.events) >= 2 and syslog.stats.packets >= 3:
                break
            await asyncio.sleep(0.05)
        start, stop = sink.events
        assert isinstance(start, WifiSessionStartV1) and isinstance(stop, WifiSessionStopV1)
        assert start.data.ap == "ben-thanh-market-ap02" and start.site == "ben-thanh-market"
        assert start.data.ssid == "HCMC Free WiFi" and start.data.randomized_mac
        assert start.data.session_id == stop.data.session_id
        assert syslog.stats.drops == {"not_a_station_event": 1}  # the malformed-address notice
    finally:
        await agent.stop()


def test_provision_sets_uci_and_installs(tmp_path: Path, stub_path: dict[str, str]) -> None:
    prefix = tmp_path / "root"
    (prefix / "etc" / "config").mkdir(parents=True)
    env = {**stub_path, "TOURPULSE_PREFIX": str(prefix)}
    script = str(SCRIPTS / "tourpulse-provision.sh")
    args = ["--ap-id", "ben-thanh-market-ap01", "--agent", "10.20.0.5", "--port", "5514"]
    ok = subprocess.run(["sh", script, *args], env=env, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    calls = Path(env["UCI_LOG"]).read_text().splitlines()
    assert "set tourpulse.agent.ap_id=ben-thanh-market-ap01" in calls
    assert "set system.@system[0].log_ip=10.20.0.5" in calls
    assert "set system.@system[0].log_port=5514" in calls
    assert calls.count("commit system") == 1 and "commit tourpulse" in calls
    assert os.access(prefix / "usr/libexec/tourpulse/hostapd-action.sh", os.X_OK)
    assert (prefix / "etc/init.d/tourpulse-hostapd").exists()
    bad = subprocess.run(
        ["sh", script, "--ap-id", "Bad Id;rm", "--agent", "x"], env=env, capture_output=True
    )
    assert bad.returncode == 2


def test_procd_init_starts_one_hostapd_cli_per_socket(tmp_path: Path) -> None:
    import socket

    run_dir = tmp_path / "hostapd"
    run_dir.mkdir()
    socks = []
    for ifname in ("wlan0", "wlan1"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(str(run_dir / ifname))
        socks.append(s)
    (run_dir / "not-a-socket").write_text("")
    harness = (
        "procd_open_instance() { echo open $1; }\n"
        'procd_set_param() { echo param "$@"; }\n'
        "procd_close_instance() { echo close; }\n"
        f". {SCRIPTS / 'tourpulse-hostapd.init'}\n"
        "start_service\n"
    )
    try:
        out = subprocess.run(
            ["sh", "-c", harness],
            env={**os.environ, "HOSTAPD_RUN_DIR": str(run_dir)},
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
    finally:
        for s in socks:
            s.close()
    commands = [line for line in out if line.startswith("param command")]
    assert len(commands) == 2 and out.count("close") == 2
    assert f"-p {run_dir} -i wlan0 -a /usr/libexec/tourpulse/hostapd-action.sh" in commands[0]
