"""The real ``hostapd_cli -a`` (Debian's hostapd 2.10) delivers station events to the action
script, which reports them to the agent over syslog.

There is no radio here, so hostapd itself cannot associate anyone. What ``hostapd_cli``
talks to is hostapd's control socket, a UNIX datagram socket with a tiny text protocol, so a
stand-in plays hostapd's side of it (the one mock in this test, because a station event
needs a radio): it answers ATTACH / PING / GET_CONFIG / DETACH as hostapd does and sends
``<3>AP-STA-CONNECTED <mac>`` unsolicited to the attached client, exactly as hostapd's
``wpa_msg`` does. Everything else is real: ``hostapd_cli``, the action script under ``sh``
(its own ``hostapd_cli get_config`` call goes through the stand-in too), UDP syslog into
the agent's receiver, and the contract events it makes. Skips when hostapd_cli is absent
(Debian package ``hostapd``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from edge.wifi.agent import WifiAgent
from edge.wifi.config import load_config
from edge.wifi.syslog import SyslogAdapter
from schemas.wifi import WifiSessionStartV1, WifiSessionStopV1
from tests.support.edge_wifi_support import ListSink, openwrt_env, write_agent_config
from tests.support.net import wait_until

SCRIPT = (
    Path(__file__).resolve().parents[2] / "firmware_scripts/openwrt/tourpulse-hostapd-action.sh"
)


def _which(name: str) -> str | None:
    """Debian puts hostapd in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin")


HOSTAPD_CLI, HOSTAPD = _which("hostapd_cli"), _which("hostapd")
CLIENT = "da:a1:19:00:00:07"
#: What hostapd answers to GET_CONFIG (hostapd/ctrl_iface.c hostapd_ctrl_iface_get_config).
CONFIG = "bssid=02:00:5e:10:00:02\nssid=HCMC Free WiFi\nwps_state=disabled\nwpa=0\n"

pytestmark = pytest.mark.skipif(HOSTAPD_CLI is None, reason="hostapd_cli not installed (hostapd)")


def _popen(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


class ControlSocket:
    """hostapd's side of ``<run_dir>/<ifname>``: replies to requests, pushes events."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.attached: list[str] = []
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            cmd = data.decode(errors="replace").strip()
            self.requests.append(cmd)
            if cmd == "ATTACH":
                self.attached.append(addr)
                reply = "OK\n"
            elif cmd == "DETACH":
                self.attached = [a for a in self.attached if a != addr]
                reply = "OK\n"
            elif cmd == "PING":
                reply = "PONG\n"
            elif cmd == "GET_CONFIG":
                reply = CONFIG
            else:
                reply = "UNKNOWN COMMAND\n"
            self.sock.sendto(reply.encode(), addr)

    def event(self, text: str) -> None:
        """An unsolicited message, as hostapd's wpa_msg sends it to attached monitors."""
        for addr in list(self.attached):
            self.sock.sendto(f"<3>{text}".encode(), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


async def test_real_hostapd_cli_runs_action_script(tmp_path: Path) -> None:
    assert HOSTAPD_CLI is not None
    run_dir = tmp_path / "hostapd"
    run_dir.mkdir()
    ctrl = ControlSocket(run_dir / "wlan0")
    sink = ListSink()
    block = "syslog:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n"
    cfg = write_agent_config(tmp_path, 1, radius="radius:\n  enabled: false\n", syslog=block)
    agent = WifiAgent(load_config(cfg), sink)
    await agent.start()
    (syslog,) = agent.adapters
    assert isinstance(syslog, SyslogAdapter)
    env = {**openwrt_env(tmp_path, syslog.port, hostapd_cli=False), "HOSTAPD_RUN_DIR": str(run_dir)}
    log = tmp_path / "hostapd_cli.log"  # below: the command line tourpulse-hostapd.init runs
    cli = _popen([HOSTAPD_CLI, "-p", str(run_dir), "-i", "wlan0", "-a", str(SCRIPT)], env, log)

    def wait(cond: object, what: str) -> None:
        try:
            wait_until(cond, 60, what)
        except AssertionError:
            raise AssertionError(f"{what}: {ctrl.requests} {log.read_text()!r}") from None

    try:
        await asyncio.to_thread(wait, lambda: ctrl.attached, "hostapd_cli attached")
        ctrl.event(f"AP-STA-CONNECTED {CLIENT}")
        await asyncio.to_thread(wait, lambda: len(sink.events) >= 1, "start event")
        ctrl.event("WPS-PBC-ACTIVE")  # not a station event: the script ignores it
        ctrl.event(f"AP-STA-DISCONNECTED {CLIENT}")
        await asyncio.to_thread(wait, lambda: len(sink.events) >= 2, "stop event")
    finally:
        cli.terminate()
        cli.wait(20)
        await agent.stop()
        ctrl.close()
    start, stop = sink.events
    assert isinstance(start, WifiSessionStartV1) and isinstance(stop, WifiSessionStopV1)
    assert start.site == "ben-thanh-market" and start.data.ap == "ben-thanh-market-ap02"
    assert start.data.ssid == "HCMC Free WiFi"  # from GET_CONFIG via the real hostapd_cli
    assert start.data.randomized_mac and start.data.session_id == stop.data.session_id
    assert "GET_CONFIG" in ctrl.requests and syslog.stats.drops == {}


async def test_action_script_reads_ssid_from_real_hostapd(tmp_path: Path) -> None:
    """Real ``hostapd -d`` with ``driver=none`` (no radio needed) serves a real control
    socket: the procd command attaches to it, and the script's ``get_config`` reads the SSID."""
    if HOSTAPD is None:
        pytest.skip("hostapd not installed")
    assert HOSTAPD_CLI is not None
    run_dir = tmp_path / "hostapd"
    conf = tmp_path / "hostapd.conf"
    conf.write_text(f"interface=tp0\ndriver=none\nctrl_interface={run_dir}\nssid=HCMC Free WiFi\n")
    hostapd_log = tmp_path / "hostapd.log"
    daemon = _popen([HOSTAPD, "-d", str(conf)], dict(os.environ), hostapd_log)
    sink = ListSink()
    block = "syslog:\n  enabled: true\n  host: 127.0.0.1\n  port: 0\n"
    cfg = write_agent_config(tmp_path, 1, radius="radius:\n  enabled: false\n", syslog=block)
    agent = WifiAgent(load_config(cfg), sink)
    await agent.start()
    (syslog,) = agent.adapters
    assert isinstance(syslog, SyslogAdapter)
    env = {**openwrt_env(tmp_path, syslog.port, hostapd_cli=False), "HOSTAPD_RUN_DIR": str(run_dir)}
    cli = None
    try:
        await asyncio.to_thread(
            wait_until, lambda: (run_dir / "tp0").is_socket(), 60, "hostapd control socket"
        )
        argv = [HOSTAPD_CLI, "-p", str(run_dir), "-i", "tp0", "-a", str(SCRIPT)]
        cli = _popen(argv, env, tmp_path / "hostapd_cli.log")
        await asyncio.to_thread(
            wait_until,
            lambda: "monitor attached" in hostapd_log.read_text(errors="replace"),
            60,
            "hostapd_cli attached to the real hostapd",
        )
        # No radio, so no station events: run the script as hostapd_cli -a would.
        await asyncio.to_thread(
            subprocess.run,
            ["sh", str(SCRIPT), "tp0", "AP-STA-CONNECTED", CLIENT],
            env=env,
            check=True,
            timeout=60,
        )
        await asyncio.to_thread(wait_until, lambda: sink.events, 60, "start event")
    finally:
        if cli is not None:
            cli.terminate()
            cli.wait(20)
        daemon.terminate()
        daemon.wait(20)
        await agent.stop()
    (start,) = sink.events
    assert isinstance(start, WifiSessionStartV1) and start.data.ssid == "HCMC Free WiFi"
