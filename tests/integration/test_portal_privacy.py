"""Portal privacy: consents are per portal session (a MAC is not a credential), openNDS
gateways match exactly, SMTP verifies the server's certificate and never logs in in clear."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.portal.controllers.opennds import _gateway_ok
from api.portal.writer import LandingWriter
from device_configs.alerting import EmailTarget
from stream.alerts.notify import _send_mail
from tests.support.net import free_port
from tests.support.portal_stubs import (
    ADMIN_TOKEN,
    StubControllers,
    portal_app,
    portal_settings,
    serve,
)

MAC = "3c:22:fb:0a:0b:0c"
ALERT = {
    "id": 1,
    "site": "ben-thanh-market",
    "type": "occupancy.high",
    "severity": "MAJOR",
    "state": "ACTIVE_UNACK",
    "originator": "x",
    "created_at": "2025-01-01T00:00:00Z",
    "details": {},
}


def test_opennds_gateways_match_exactly_never_as_patterns() -> None:
    allowed = ["10.0.0.1", "192.168.8.1:2050"]
    assert _gateway_ok("10.0.0.1:2050", allowed)
    assert _gateway_ok("10.0.0.1", allowed)
    assert _gateway_ok("192.168.8.1:2050", allowed)
    for forged in (
        "10.0.0.1@evil.com",
        "10.0.0.1@evil.com:80",
        "10.0.0.1.evil.com",
        "evil.com",
        "10.0.0.10",
        "192.168.8.1:2051",
        "10.0.0.1:02050",
        "10.0.0.1:99999",
    ):
        assert not _gateway_ok(forged, allowed), forged
    assert not _gateway_ok("10.0.0.1@evil.com", ["*"])
    assert not _gateway_ok("8.8.8.8:2050", ["*"])  # "*" = any private address only
    assert _gateway_ok("172.16.0.1:2050", ["*"])


@pytest.fixture
async def env(settings: Any) -> AsyncIterator[dict[str, Any]]:
    stub = StubControllers(free_port())
    app = portal_app(settings, portal_settings(stub.port))
    async with serve(stub.app(), stub.port), serve(app, free_port()) as base:
        yield {"stub": stub, "base": base, "db": settings.database_url, "app": app}


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


@pytest.mark.integration
async def test_a_known_mac_does_not_reveal_or_withdraw_someone_elses_consent(
    env: dict[str, Any],
) -> None:
    stub, base, site = env["stub"], env["base"], "saigon-zoo"
    async with httpx.AsyncClient(base_url=base, timeout=30) as victim:
        r = await victim.get(stub.meraki_landing(base, site, MAC, "http://example.com/"))
        form = {"csrf": _csrf(r.text), "terms": "yes", "marketing": "yes"}
        assert (await victim.post(f"/portal/{site}/accept", data=form)).status_code == 303
        own = await victim.get(f"/portal/{site}/privacy?lang=en")
        assert "Withdraw marketing consent" in own.text
    # The attacker forges a landing with the victim's MAC (Meraki's parameters are unsigned).
    async with httpx.AsyncClient(base_url=base, timeout=30) as attacker:
        landing = await attacker.get(stub.meraki_landing(base, site, MAC, "http://example.com/"))
        page = await attacker.get(f"/portal/{site}/privacy?lang=en")
        assert page.status_code == 200
        assert "Withdraw marketing consent" not in page.text
        assert "City offers and measurement" not in page.text
        r = await attacker.post(
            f"/portal/{site}/consent/withdraw",
            data={"csrf": _csrf(landing.text), "purpose": "marketing"},
        )
        assert r.status_code == 303
    with psycopg.connect(env["db"]) as conn:
        rows = conn.execute(
            "SELECT purpose, withdrawn_at IS NOT NULL FROM portal_consents ORDER BY purpose"
        ).fetchall()
    assert rows == [("marketing", False), ("network_access", False)]


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


async def test_smtp_starttls_verifies_the_certificate_and_never_logs_in_in_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_ctx)
    controller.start()
    base = {
        "kind": "email",
        "name": "duty",
        "smtp_port": port,
        "sender": "tp@example.vn",
        "recipients": ["duty@example.vn"],
        "starttls": True,
    }
    body = {"reason": "raised", "alert": ALERT}
    try:
        # An unknown certificate (a man in the middle, to the client) is refused.
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(_send_mail, EmailTarget(**base), body, 10)
        assert inbox.messages == []
        # With the CA that signed it, the mail goes through over TLS.
        trusted = EmailTarget(**base, tls_ca_file=str(cert))
        await asyncio.to_thread(_send_mail, trusted, body, 10)
        assert len(inbox.messages) == 1
        # Credentials without STARTTLS: refused before anything is sent.
        monkeypatch.setenv("TP_TEST_SMTP_USER", "duty")
        monkeypatch.setenv("TP_TEST_SMTP_PASS", "secret-password")
        clear = EmailTarget(
            **{**base, "starttls": False},
            username_env="TP_TEST_SMTP_USER",
            password_env="TP_TEST_SMTP_PASS",
        )
        with pytest.raises(smtplib.SMTPException, match="without STARTTLS"):
            await asyncio.to_thread(_send_mail, clear, body, 10)
        assert len(inbox.messages) == 1
    finally:
        controller.stop()


ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.integration
async def test_data_subject_request_verify_export_erase_audit(env: dict[str, Any]) -> None:
    stub, base, site = env["stub"], env["base"], "saigon-zoo"
    async with httpx.AsyncClient(base_url=base, timeout=30) as phone:
        r = await phone.get(stub.meraki_landing(base, site, MAC, "http://example.com/"))
        form = {"csrf": _csrf(r.text), "terms": "yes", "marketing": "yes"}
        await phone.post(f"/portal/{site}/accept", data=form)
        async with httpx.AsyncClient(base_url=base, timeout=30) as stranger:
            no_session = await stranger.post("/api/v1/portal/dsr", json={"kind": "access"})
            assert no_session.status_code == 400
        access = (await phone.post("/api/v1/portal/dsr", json={"kind": "access"})).json()
        erasure = (await phone.post("/api/v1/portal/dsr", json={"kind": "erasure"})).json()
    async with httpx.AsyncClient(base_url=base, timeout=30) as admin:
        a_id, e_id = access["request_id"], erasure["request_id"]
        # Nothing is released before verification, and only to an admin.
        assert (await admin.get(f"/api/v1/portal/admin/dsr/{a_id}/export")).status_code == 401
        early = await admin.get(f"/api/v1/portal/admin/dsr/{a_id}/export", headers=ADMIN_AUTH)
        assert early.status_code == 409
        listed = (await admin.get("/api/v1/portal/admin/dsr", headers=ADMIN_AUTH)).json()
        assert {r["status"] for r in listed} == {"pending"} and "client_id" not in listed[0]
        ok = await admin.post(
            f"/api/v1/portal/admin/dsr/{a_id}/verify",
            json={"code": access["verification_code"]},
            headers=ADMIN_AUTH,
        )
        assert ok.status_code == 200 and ok.json()["status"] == "verified"
        exported = (
            await admin.get(f"/api/v1/portal/admin/dsr/{a_id}/export", headers=ADMIN_AUTH)
        ).json()
        assert len(exported["data"]["visits"]) == 1
        assert {c["purpose"] for c in exported["data"]["consents"]} == {
            "marketing",
            "network_access",
        }
        assert exported["data"]["promos_shown"]
        # A wrong code rejects the erasure request for good.
        wrong = await admin.post(
            f"/api/v1/portal/admin/dsr/{e_id}/verify",
            json={"code": "not-the-code-0000"},
            headers=ADMIN_AUTH,
        )
        assert wrong.status_code == 422
        refused = await admin.post(f"/api/v1/portal/admin/dsr/{e_id}/erase", headers=ADMIN_AUTH)
        assert refused.status_code == 409
    # A fresh erasure request, verified, erases every row of that client id.
    async with httpx.AsyncClient(base_url=base, timeout=30) as phone:
        await phone.get(stub.meraki_landing(base, site, MAC, "http://example.com/"))
        again = (await phone.post("/api/v1/portal/dsr", json={"kind": "erasure"})).json()
    async with httpx.AsyncClient(base_url=base, timeout=30) as admin:
        await admin.post(
            f"/api/v1/portal/admin/dsr/{again['request_id']}/verify",
            json={"code": again["verification_code"]},
            headers=ADMIN_AUTH,
        )
        erased = await admin.post(
            f"/api/v1/portal/admin/dsr/{again['request_id']}/erase", headers=ADMIN_AUTH
        )
        assert erased.status_code == 200 and erased.json()["erased"]["consents"] == 2
        audit = (await admin.get("/api/v1/portal/admin/audit", headers=ADMIN_AUTH)).json()
    with psycopg.connect(env["db"]) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM portal_visits), (SELECT count(*) FROM portal_consents),"
            " (SELECT count(*) FROM portal_promo_impressions)"
        ).fetchone()
    assert left == (0, 0, 0)
    actions = [a["action"] for a in audit if a["action"].startswith("dsr.")]
    assert actions[:2] == ["dsr.erase", "dsr.verified"] and "dsr.export" in actions
    assert "dsr.rejected" in actions and actions.count("dsr.request") == 3


async def _verified_erasure(base: str, ps_request: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as admin:
        await admin.post(
            f"/api/v1/portal/admin/dsr/{ps_request['request_id']}/verify",
            json={"code": ps_request["verification_code"]},
            headers=ADMIN_AUTH,
        )
        return await admin.post(
            f"/api/v1/portal/admin/dsr/{ps_request['request_id']}/erase", headers=ADMIN_AUTH
        )


@pytest.mark.integration
async def test_erasure_covers_landings_still_buffered_here_or_in_another_process(
    env: dict[str, Any],
) -> None:
    """A landing served just before the erasure is still in the write-behind buffer when
    the admin erases (CI hit it: one visit and its four promo rows survived). The erasure
    must cover it, whether the buffer is this process's or another API process's."""
    stub, base, site = env["stub"], env["base"], "saigon-zoo"
    portal = env["app"].state.portal
    await portal.writer.drain()
    portal.writer.interval = 30.0  # the next landing stays buffered for the whole test
    async with httpx.AsyncClient(base_url=base, timeout=30) as phone:
        await phone.get(stub.meraki_landing(base, site, MAC, "http://example.com/"))
        erasure = (await phone.post("/api/v1/portal/dsr", json={"kind": "erasure"})).json()
    with psycopg.connect(env["db"]) as conn:
        client_id = conn.execute("SELECT client_id FROM portal_dsr").fetchone()
    assert client_id is not None
    # The same client's landing, buffered in another API process (a second writer).
    other = LandingWriter(portal.store)
    other.add("other-process-session", (site, client_id[0], None, "meraki", "en"), [("p", "a")])
    erased = await _verified_erasure(base, erasure)
    assert erased.status_code == 200
    # Both buffers are written only after the erasure.
    await portal.writer.drain()
    await other.drain()
    with psycopg.connect(env["db"]) as conn:
        left = conn.execute(
            "SELECT (SELECT count(*) FROM portal_visits), "
            " (SELECT count(*) FROM portal_promo_impressions)"
        ).fetchone()
    assert left == (0, 0)
    # A landing after the erasure is a new visit and is kept.
    other.add("after-erasure", (site, client_id[0], None, "meraki", "en"), [("p", "a")])
    await other.drain()
    with psycopg.connect(env["db"]) as conn:
        kept = conn.execute("SELECT portal_session FROM portal_visits").fetchall()
    assert kept == [("after-erasure",)]


@pytest.mark.integration
async def test_erasure_waits_for_a_landing_write_in_flight(env: dict[str, Any]) -> None:
    """A landing batch that is being written while the admin erases (CI hit it twice: the
    write-behind flush and the erase 5 ms apart) must not survive the erasure."""
    stub, base, site = env["stub"], env["base"], "saigon-zoo"
    async with httpx.AsyncClient(base_url=base, timeout=30) as phone:
        await phone.get(stub.meraki_landing(base, site, MAC, "http://example.com/"))
        erasure = (await phone.post("/api/v1/portal/dsr", json={"kind": "erasure"})).json()
    await env["app"].state.portal.writer.drain()
    async with await psycopg.AsyncConnection.connect(env["db"]) as writer:
        row = await (await writer.execute("SELECT client_id FROM portal_dsr")).fetchone()
        assert row is not None
        # The landing writer's transaction, begun before the erase and not yet committed.
        await writer.execute(
            "INSERT INTO portal_visits (portal_session, site, client_id, controller, language)"
            " VALUES ('in-flight', %s, %s, 'meraki', 'en')",
            (site, row[0]),
        )
        erase = asyncio.create_task(_verified_erasure(base, erasure))
        await asyncio.sleep(1.0)  # the erase runs (or, with the fix, waits) meanwhile
        await writer.commit()
        assert (await erase).status_code == 200
    with psycopg.connect(env["db"]) as conn:
        left = conn.execute("SELECT portal_session FROM portal_visits").fetchall()
    assert left == []


@pytest.mark.integration
def test_retention_removes_portal_rows_after_twelve_months(database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from stream.storage.retention import RetentionPolicy, enforce

    old = datetime.now(UTC) - timedelta(days=400)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for ps, at in (("old", old), ("new", datetime.now(UTC))):
            conn.execute(
                "INSERT INTO portal_visits (portal_session, site, client_id, controller,"
                " language, created_at) VALUES (%s, 's', 'c', 'meraki', 'en', %s)",
                (ps, at),
            )
            conn.execute(
                "INSERT INTO portal_promo_impressions (portal_session, promo_id, variant)"
                " VALUES (%s, 'p', 'a')",
                (ps,),
            )
            conn.execute(
                "INSERT INTO portal_consents (client_id, site, portal_session, purpose,"
                " terms_version, notice_version, language, given_at)"
                " VALUES ('c', 's', %s, 'marketing', 'v', 'v', 'en', %s)",
                (ps, at),
            )
    removed = enforce(database_url, RetentionPolicy())
    assert removed["portal_visits"] == 1 and removed["portal_consents"] == 1
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT portal_session FROM portal_visits").fetchall() == [("new",)]
        assert conn.execute("SELECT count(*) FROM portal_promo_impressions").fetchone() == (1,)
        assert conn.execute("SELECT portal_session FROM portal_consents").fetchall() == [("new",)]
