"""Our openNDS FAS crypto against openNDS's own reference FAS (``fas-aes.php``, Debian).

The stub gateway in the flow tests encrypts with our code, so it cannot catch a mistake
made the same way on both sides. Here the vendor's PHP decrypts what our gateway-side
``encrypt_query`` produced and computes ``tok`` its way; both must match ours.
Needs Debian's ``php-cli`` and ``opennds`` packages (its FAS key is the shipped
``$key="1234567890"``).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.portal.controllers.opennds import encrypt_query, rhid
from tests.support.net import free_port

FAS_DIR = Path("/etc/opennds")
SHIPPED_KEY = "1234567890"

pytestmark = pytest.mark.skipif(
    shutil.which("php") is None or not (FAS_DIR / "fas-aes.php").exists(),
    reason="needs Debian packages php-cli and opennds (reference fas-aes.php)",
)


@pytest.fixture
def php_fas() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["php", "-S", f"127.0.0.1:{port}", "-t", str(FAS_DIR)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/fas-aes.php", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_reference_fas_decrypts_our_query_and_agrees_on_tok(php_fas: str) -> None:
    hid = "5f1c" * 16
    text = (
        "clientip=192.168.2.10, clientmac=aa:bb:cc:dd:ee:ff, client_type=cpd_can,"
        f" gatewayname=TourPulse-Ref, version=9.10.0, hid={hid}, gatewayaddress=192.168.2.1:2050,"
        " gatewaymac=00:11:22:33:44:55, authdir=opennds_auth, originurl=http%3A%2F%2Fexample.org,"
        " clientif=wlan0"
    )
    iv = "0123456789abcdef"
    r = httpx.get(
        php_fas + "/fas-aes.php",
        params={
            "fas": encrypt_query(text, iv, SHIPPED_KEY),
            "iv": iv,
            "fullname": "T",
            "email": "t@example.com",
        },
        timeout=30,
    )
    page = html.unescape(r.text)
    assert "<title>TourPulse-Ref</title>" in page
    assert 'action="http://192.168.2.1:2050/opennds_auth/"' in page
    tok = re.search(r'name="tok" value="([0-9a-f]{64})"', page)
    assert tok is not None and tok.group(1) == rhid(hid, SHIPPED_KEY)
