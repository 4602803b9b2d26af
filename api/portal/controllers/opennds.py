"""openNDS Forwarding Authentication Service (FAS), secure levels 1 and 2.

openNDS redirects the client to the FAS with ``?fas=<query>`` (level 1: base64 of
``clientip=.., clientmac=.., hid=.., gatewayaddress=.., authdir=.., originurl=..``) or
``?fas=<query>&iv=<16 chars>`` (level 2: the same text AES-256-CBC encrypted with the shared
``faskey``), as openNDS's own ``fas-hid.php`` / ``fas-aes.php`` read them. The FAS proves it
knows the key by sending the browser to ``http://<gatewayaddress>/<authdir>/?tok=<rhid>``
with ``rhid = sha256(hid + faskey)``; openNDS then authenticates the client.

Level 1 queries are not encrypted, so anyone can forge one: with a faskey configured only
level 2 is accepted. ``gatewayaddress`` must still be a private address (or exactly one of
``TP_PORTAL_OPENNDS_GATEWAYS``, compared as address and port, never as a shell pattern:
``10.0.0.1@evil.com`` must not pass), otherwise the portal would send browsers to
attacker hosts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from api.portal.controllers.base import Landing
from api.portal.security import MAX_URL, PortalError, bounded, safe_url
from api.portal.settings import PortalSettings

_AUTHDIR = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_HID = re.compile(r"^[0-9a-fA-F]{16,128}$")


def php_key(faskey: str) -> bytes:
    """The AES key PHP's openssl uses for a passphrase: its bytes, NUL-padded to 32."""
    raw = faskey.encode()
    return raw[:32].ljust(32, b"\0")


def decrypt_query(fas: str, iv: str, faskey: str) -> str:
    """Undo ``openssl_decrypt(base64_decode(fas), 'AES-256-CBC', key, 0, iv)``."""
    try:
        iv_bytes = iv.encode("ascii")
        if len(iv_bytes) != 16:
            raise ValueError("iv must be 16 characters")
        ciphertext = base64.b64decode(base64.b64decode(fas, validate=True), validate=True)
        decryptor = Cipher(algorithms.AES(php_key(faskey)), modes.CBC(iv_bytes)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise PortalError("bad_params", 400, "openNDS query does not decrypt") from None


def encrypt_query(text: str, iv: str, faskey: str) -> str:
    """The gateway's side of :func:`decrypt_query` (used by the stub gateway in tests)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(text.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(php_key(faskey)), modes.CBC(iv.encode())).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return base64.b64encode(base64.b64encode(ciphertext)).decode()


def parse_fields(text: str) -> dict[str, str]:
    """``"name=value, name=value"`` as openNDS formats the FAS query."""
    fields: dict[str, str] = {}
    for item in text.split(", "):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            fields[name.strip()] = value.strip()
    return fields


def rhid(hid: str, faskey: str) -> str:
    return hashlib.sha256((hid + faskey).encode()).hexdigest()


def _gateway_ok(address: str, allowed: list[str]) -> bool:
    """``address`` is ``host[:port]`` with a literal IP host, private or loopback, and, if
    a list is configured, exactly one of its entries (``host`` alone allows any port)."""
    host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
    if port and not (port.isdigit() and 0 < int(port) < 65536 and str(int(port)) == port):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if allowed and allowed != ["*"]:
        return address in allowed or str(ip) in allowed
    return ip.is_private or ip.is_loopback


class OpenNDSAdapter:
    name = "opennds"

    def parse(self, params: Mapping[str, str], settings: PortalSettings) -> Landing:
        if settings.opennds_faskey is None:
            raise PortalError("not_configured", 503, "openNDS faskey is not set")
        fas = bounded(params.get("fas"), "fas", 4096)
        iv = params.get("iv")
        if not iv:
            # Level 1 (plain base64) is forgeable by anyone; the faskey is set, so only
            # level 2 is accepted.
            raise PortalError("bad_params", 400, "openNDS must use FAS secure level 2 (iv)")
        text = decrypt_query(fas, bounded(iv, "iv", 64), settings.opennds_faskey.get_secret_value())
        f = parse_fields(text)
        hid = bounded(f.get("hid"), "hid", 128)
        if not _HID.match(hid):
            raise PortalError("bad_params", 400, "hid is not a hash")
        gateway = bounded(f.get("gatewayaddress"), "gatewayaddress", 64)
        if not _gateway_ok(gateway, settings.opennds_gateways):
            raise PortalError("bad_redirect", 400, "gatewayaddress is not an allowed gateway")
        authdir = f.get("authdir") or "opennds_auth"
        if not _AUTHDIR.match(authdir):
            raise PortalError("bad_params", 400, "authdir is malformed")
        origin = unquote(f.get("originurl", "")) if f.get("originurl") else ""
        cont = None
        if origin:
            cont = safe_url(bounded(origin, "originurl", MAX_URL), settings.continue_hosts)
        return Landing(
            controller=self.name,
            client_mac=bounded(f.get("clientmac"), "clientmac", 32),
            client_ip=bounded(f.get("clientip"), "clientip", 45, required=False) or None,
            continue_url=cont,
            grant={"hid": hid, "gateway": gateway, "authdir": authdir},
        )

    async def grant(
        self, grant: Mapping[str, Any], duration_s: int, welcome_url: str, settings: PortalSettings
    ) -> str:
        if settings.opennds_faskey is None:
            raise PortalError("not_configured", 503, "openNDS faskey is not set")
        tok = rhid(grant["hid"], settings.opennds_faskey.get_secret_value())
        query = urlencode({"tok": tok, "redir": welcome_url}, quote_via=quote)
        return f"http://{grant['gateway']}/{grant['authdir']}/?{query}"
