"""SOAP 1.2 plumbing for the simulated ONVIF camera: envelopes, faults, WS-UsernameToken.

Only what ONVIF clients send is understood: one body element naming the operation, and a
WS-Security header with a UsernameToken (PasswordDigest as cameras require, or PasswordText).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from lxml import etree

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
}
MAX_CLOCK_SKEW = timedelta(minutes=5)  # WS-Security replay window most cameras use
_NS_DECL = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())


class SoapFault(Exception):
    """A fault to return to the client: ``subcode`` is an ONVIF ``ter:`` code."""

    def __init__(self, subcode: str, reason: str, sender: bool = True) -> None:
        super().__init__(reason)
        self.subcode, self.reason, self.sender = subcode, reason, sender


@dataclass(frozen=True)
class Request:
    operation: str  # local name of the body element, e.g. "GetProfiles"
    body: etree._Element
    username: str | None

    def text(self, path: str) -> str | None:
        """Text of the first element matching a namespace-agnostic path like 'Velocity/Zoom'."""
        xpath = "./" + "/".join(f"*[local-name()='{p}']" for p in path.split("/"))
        found = self.body.xpath(xpath)
        return found[0].text if found else None

    def attr(self, path: str, name: str) -> str | None:
        xpath = "./" + "/".join(f"*[local-name()='{p}']" for p in path.split("/"))
        found = self.body.xpath(xpath)
        return found[0].get(name) if found else None


def parse_request(raw: bytes) -> tuple[Request, etree._Element | None]:
    """Parse an envelope; return the request and the UsernameToken element (if any)."""
    try:
        root = etree.fromstring(
            raw, parser=etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError as exc:
        raise SoapFault("ter:WellFormed", f"not well-formed XML: {exc}") from None
    body = root.find("s:Body", NS)
    if body is None or len(body) == 0:
        raise SoapFault("ter:WellFormed", "no SOAP 1.2 Body with an operation")
    op = body[0]
    token = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
    username = token.findtext("wsse:Username", namespaces=NS) if token is not None else None
    return Request(etree.QName(op).localname, op, username), token


def verify_token(token: etree._Element | None, username: str, password: str) -> None:
    """Check a WS-UsernameToken; raise ``ter:NotAuthorized`` on any mismatch."""
    if token is None:
        raise SoapFault("ter:NotAuthorized", "WS-Security UsernameToken required")
    given_user = token.findtext("wsse:Username", namespaces=NS)
    pw = token.find("wsse:Password", NS)
    if given_user != username or pw is None or pw.text is None:
        raise SoapFault("ter:NotAuthorized", "Sender not authorized")
    if pw.get("Type", "").endswith("#PasswordText"):
        ok = hmac.compare_digest(pw.text.encode(), password.encode())
    else:
        nonce_text = token.findtext("wsse:Nonce", namespaces=NS) or ""
        created = token.findtext("wsu:Created", namespaces=NS) or ""
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            raise SoapFault("ter:NotAuthorized", "bad Nonce or Created") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if abs(datetime.now(UTC) - when) > MAX_CLOCK_SKEW:
            raise SoapFault("ter:NotAuthorized", "Created timestamp outside the allowed skew")
        expected = hashlib.sha1(nonce + created.encode() + password.encode()).digest()
        ok = hmac.compare_digest(base64.b64encode(expected).decode(), pw.text.strip())
    if not ok:
        raise SoapFault("ter:NotAuthorized", "Sender not authorized")


def envelope(body_xml: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {_NS_DECL}><s:Body>{body_xml}'
        "</s:Body></s:Envelope>"
    ).encode()


def fault(exc: SoapFault) -> bytes:
    code = "s:Sender" if exc.sender else "s:Receiver"
    return envelope(
        f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{exc.subcode}"
        f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">{escape(exc.reason)}'
        "</s:Text></s:Reason></s:Fault>"
    )


def xml_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str | None, default: float) -> float:
    """Seconds from an xs:duration like PT5S / PT1M / PT0.5S (the forms ONVIF clients send)."""
    if not text:
        return default
    t = text.strip().upper()
    if not t.startswith("PT"):
        raise SoapFault("ter:InvalidArgVal", f"unsupported duration {text!r}")
    total, num = 0.0, ""
    for ch in t[2:]:
        if ch.isdigit() or ch == ".":
            num += ch
            continue
        scale = {"H": 3600, "M": 60, "S": 1}.get(ch)
        if scale is None or not num:
            raise SoapFault("ter:InvalidArgVal", f"unsupported duration {text!r}")
        total, num = total + float(num) * scale, ""
    return total
