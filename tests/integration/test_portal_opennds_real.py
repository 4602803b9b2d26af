"""The portal as FAS for a real openNDS 9.10 (Debian) gateway, in network namespaces.

Topology (all private, created and removed by the test; nothing touches the host's routes):

    client netns (10.77.N.2) --veth-- gateway netns: openNDS on 10.77.N.1:2050
                                       | NAT out of a second veth
                               host: the portal (FAS) on 10.78.N.1

The client is ``curl`` inside its namespace: it browses to a public address, openNDS
redirects it to the portal with a level 2 (AES-256-CBC) query, the portal grants through
``/opennds_auth/?tok=...`` and ``ndsctl json`` must then list the client as authenticated.
openNDS only serves clients it finds in a DHCP lease file; no DHCP server runs here, so
the test writes the client's lease into ``/tmp/dhcp.leases`` (where openNDS looks).
Needs root and the Debian packages opennds, iptables, php-cli, curl, iproute2.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from pydantic import SecretStr

from tests.support.portal_stubs import portal_app, portal_settings, serve

FASKEY = "tp-real-opennds-key-0123456789"
LEASES = Path("/tmp/dhcp.leases")
NEEDED = ("opennds", "ndsctl", "iptables", "php", "curl", "ip")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or any(shutil.which(t) is None for t in NEEDED),
        reason="needs root and Debian packages opennds iptables php-cli curl iproute2",
    ),
]


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[dict[str, Any]]:
    n = random.randint(100, 250)
    gw, cl, up = f"tpg{n}", f"tpc{n}", f"tpu{n}"
    try:
        sh("ip", "netns", "add", gw)
        sh("ip", "netns", "add", cl)
        sh("ip", "link", "add", f"tpa{n}", "type", "veth", "peer", "name", f"tpb{n}")
        sh("ip", "link", "set", f"tpa{n}", "netns", gw)
        sh("ip", "link", "set", f"tpb{n}", "netns", cl)
        sh("ip", "link", "add", up, "type", "veth", "peer", "name", f"tpw{n}")
        sh("ip", "link", "set", f"tpw{n}", "netns", gw)
        sh("ip", "addr", "add", f"10.78.{n}.1/30", "dev", up)
        sh("ip", "link", "set", up, "up")
        gw_cmds = [
            ["addr", "add", f"10.78.{n}.2/30", "dev", f"tpw{n}"],
            ["link", "set", f"tpw{n}", "up"],
            ["route", "add", "default", "via", f"10.78.{n}.1"],
            ["addr", "add", f"10.77.{n}.1/24", "dev", f"tpa{n}"],
            ["link", "set", f"tpa{n}", "up"],
            ["link", "set", "lo", "up"],
        ]
        cl_cmds = [
            ["addr", "add", f"10.77.{n}.2/24", "dev", f"tpb{n}"],
            ["link", "set", f"tpb{n}", "up"],
            ["link", "set", "lo", "up"],
            ["route", "add", "default", "via", f"10.77.{n}.1"],
        ]
        for ns, cmds in ((gw, gw_cmds), (cl, cl_cmds)):
            for cmd in cmds:
                sh("ip", "-n", ns, *cmd)
        sh("ip", "netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh(
            "ip",
            "netns",
            "exec",
            gw,
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            f"tpw{n}",
            "-j",
            "MASQUERADE",
        )
        link = sh("ip", "-n", cl, "link", "show", f"tpb{n}")
        mac = re.search(r"link/ether ([0-9a-f:]{17})", link).group(1)  # type: ignore[union-attr]
        yield {"n": n, "gw": gw, "cl": cl, "mac": mac, "dir": tmp_path}
    finally:
        sh("ip", "netns", "del", gw, check=False)
        sh("ip", "netns", "del", cl, check=False)
        sh("ip", "link", "del", up, check=False)


@pytest.fixture
def lease(netns: dict[str, Any]) -> Iterator[None]:
    before = LEASES.read_text() if LEASES.exists() else None
    line = f"{int(time.time()) + 3600} {netns['mac']} 10.77.{netns['n']}.2 tpclient *\n"
    LEASES.write_text((before or "") + line)
    try:
        yield
    finally:
        if before is None:
            LEASES.unlink(missing_ok=True)
        else:
            LEASES.write_text(before)


@pytest.fixture
def opennds(netns: dict[str, Any], lease: None) -> Iterator[dict[str, Any]]:
    n, fas_port = netns["n"], 18000 + netns["n"]
    conf = netns["dir"] / "opennds.conf"
    conf.write_text(
        f"GatewayInterface tpa{n}\nGatewayName TourPulseReal\nGatewayAddress 10.77.{n}.1\n"
        f"GatewayPort 2050\nfasport {fas_port}\nfasremoteip 10.78.{n}.1\n"
        f"faspath /portal/saigon-zoo\nfas_secure_enabled 2\nfaskey {FASKEY}\n"
        "login_option_enabled 0\n"
    )
    log = (netns["dir"] / "opennds.log").open("w")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns["gw"], "opennds", "-f", "-d", "1", "-c", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield {**netns, "fas_port": fas_port, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def curl(env: dict[str, Any], *args: str) -> str:
    jar = str(env["dir"] / "cookies.txt")
    cmd = ["ip", "netns", "exec", env["cl"], "curl", "-s", "-m", "20", "-b", jar, "-c", jar, *args]
    out = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60)
    return out.stdout


async def test_real_opennds_level2_grant(opennds: dict[str, Any], settings: Any) -> None:
    env = opennds
    psettings = portal_settings(
        1, opennds_faskey=SecretStr(FASKEY), opennds_gateways=["*"], rate_per_minute=600
    )
    app = portal_app(settings, psettings)
    async with serve(app, env["fas_port"], host=f"10.78.{env['n']}.1"):
        fas_url = ""
        for _ in range(120):  # openNDS takes a few seconds to set up its firewall
            fas_url = await curl(
                env, "-o", "/dev/null", "-w", "%{redirect_url}", "http://93.184.216.34/"
            )
            if "fas=" in fas_url:
                break
            await asyncio.sleep(0.5)
        assert "fas=" in fas_url and "iv=" in fas_url, (env["dir"] / "opennds.log").read_text()
        splash = await curl(env, fas_url)
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', splash)
        assert csrf is not None, splash[:500]
        accept_url = urljoin(fas_url, "/portal/saigon-zoo/accept")
        grant = await curl(
            env,
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}",
            "-d",
            "terms=yes",
            "-d",
            f"csrf={csrf.group(1)}",
            accept_url,
        )
        assert grant.startswith(f"http://10.77.{env['n']}.1:2050/opennds_auth/?tok="), grant
        welcome = await curl(env, "-L", grant)
        assert "You are online" in welcome
        clients = await _ndsctl_clients(env["gw"])
        states = {c.get("mac"): c.get("state") for c in clients.get("clients", {}).values()}
        assert states.get(env["mac"]) == "Authenticated", clients


async def _ndsctl_clients(gw: str) -> dict[str, Any]:
    """``ndsctl json``, retried for a while: ndsctl takes a lock openNDS's own scripts also
    hold while they authenticate a client, and once in CI it exited 3 right after a grant."""
    for _ in range(50):
        out = await asyncio.to_thread(
            subprocess.run,
            ("ip", "netns", "exec", gw, "ndsctl", "json"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if out.returncode == 0:
            return dict(json.loads(out.stdout))
        await asyncio.sleep(0.2)
    raise AssertionError(f"ndsctl json kept failing: exit {out.returncode}, {out.stderr}")
