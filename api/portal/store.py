"""PostgreSQL access for the portal: visits, funnel stages, consents, promos, audit.

Every stage update is "set once" (``WHERE <stage> IS NULL``), which is what makes a
replayed form or grant harmless: the second attempt changes nothing and is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from api.portal.promos import Promo

PROMO_COLUMNS = (
    "id", "kind", "variants", "url", "site_ref", "image", "sites", "languages",
    "starts_at", "ends_at", "priority", "active",
)  # fmt: skip


#: (site, client id, client ip hash, controller, language) of one visit.
Visit = tuple[str, str, str | None, str, str]
#: (portal session, visit, (promo, variant) shown, when the page was served).
Landing = tuple[str, Visit, Sequence[tuple[str, str]], datetime]
PROMO_DEFAULTS: dict[str, Any] = {"sites": [], "languages": [], "priority": 0, "active": True}


class PortalStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def land_many(self, batch: Sequence[Landing]) -> None:
        """Visits and the promos they were shown, many at once, in one statement.

        A landing buffered before an erasure of its client id completed (here or in
        another API process) is not written: the erasure already answered for it.
        """
        visits = list({ps: (ps, *visit, at) for ps, visit, _, at in batch}.values())
        shown = [(ps, promo, variant) for ps, _, cards, _ in batch for promo, variant in cards]
        columns = [list(col) for col in zip(*visits, strict=True)]
        columns += [list(col) for col in zip(*shown, strict=True)] if shown else [[], [], []]
        async with self.pool.connection() as conn:
            await conn.execute(
                "WITH u AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::text[], %s::text[], %s::timestamptz[]) AS u(portal_session, site,"
                " client_id, client_ip_hash, controller, language, created_at)"
                " WHERE NOT EXISTS (SELECT 1 FROM portal_dsr d WHERE d.kind = 'erasure'"
                " AND d.status = 'completed' AND d.client_id = u.client_id"
                " AND d.completed_at >= u.created_at)),"
                " v AS (INSERT INTO portal_visits (portal_session, site, client_id,"
                " client_ip_hash, controller, language, created_at) SELECT * FROM u"
                " ON CONFLICT (portal_session) DO NOTHING)"
                " INSERT INTO portal_promo_impressions (portal_session, promo_id, variant)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) AS s(ps, promo, variant)"
                " WHERE s.ps IN (SELECT portal_session FROM u) ON CONFLICT DO NOTHING",
                columns,
            )

    async def ensure_visit(self, ps: str, visit: Visit) -> None:
        """The visit row from the sealed cookie, if the write-behind has not written it yet."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO portal_visits (portal_session, site, client_id, client_ip_hash,"
                " controller, language) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (ps, *visit),
            )

    async def accept_terms(
        self, ps: str, purposes: Iterable[str], terms_v: str, notice_v: str, lang: str
    ) -> bool:
        """Record acceptance and consents once; False if this visit had already accepted."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE portal_visits SET accepted_at = now() WHERE portal_session = %s"
                " AND accepted_at IS NULL RETURNING client_id, site",
                (ps,),
            )
            row = await cur.fetchone()
            if row is None:
                return False
            for purpose in purposes:
                await conn.execute(
                    "INSERT INTO portal_consents (client_id, site, portal_session, purpose,"
                    " terms_version, notice_version, language) VALUES (%s,%s,%s,%s,%s,%s,%s)"
                    " ON CONFLICT DO NOTHING",
                    (row[0], row[1], ps, purpose, terms_v, notice_v, lang),
                )
            return True

    async def claim_grant(self, ps: str, expires: datetime) -> bool:
        """Take the one grant of a visit that accepted the terms; False if replayed."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE portal_visits SET granted_at = now(), grant_expires = %s"
                " WHERE portal_session = %s AND accepted_at IS NOT NULL AND granted_at IS NULL"
                " RETURNING 1",
                (expires, ps),
            )
            return await cur.fetchone() is not None

    async def release_grant(self, ps: str) -> None:
        """Undo a claim when the controller refused, so the visitor can retry."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE portal_visits SET granted_at = NULL, grant_expires = NULL"
                " WHERE portal_session = %s",
                (ps,),
            )

    async def visit(self, ps: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM portal_visits WHERE portal_session = %s", (ps,))
            return await cur.fetchone()

    async def record_click(self, ps: str, promo: str) -> str | None:
        """Count a click on a promo this visit was shown; return its variant (None if not)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO portal_promo_clicks (portal_session, promo_id, variant)"
                " SELECT portal_session, promo_id, variant FROM portal_promo_impressions"
                " WHERE portal_session = %s AND promo_id = %s"
                " ON CONFLICT (portal_session, promo_id)"
                " DO UPDATE SET clicks = portal_promo_clicks.clicks + 1 RETURNING variant",
                (ps, promo),
            )
            row = await cur.fetchone()
            return str(row[0]) if row else None

    async def consents(self, ps: str) -> list[dict[str, Any]]:
        """The consents given in this portal session (the sealed cookie's), never looked up
        by client id: that id derives from a MAC the controller passes unsigned, so anyone
        knowing a victim's MAC could otherwise list or withdraw the victim's consents."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT purpose, terms_version, notice_version, given_at, withdrawn_at"
                " FROM portal_consents WHERE portal_session = %s ORDER BY given_at",
                (ps,),
            )
            return await cur.fetchall()

    async def withdraw(self, ps: str, purpose: str) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE portal_consents SET withdrawn_at = now() WHERE portal_session = %s"
                " AND purpose = %s AND withdrawn_at IS NULL",
                (ps, purpose),
            )
            return cur.rowcount

    async def grant_expiry(self, site: str, ip_hash: str) -> datetime | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT max(grant_expires) FROM portal_visits WHERE site = %s"
                " AND client_ip_hash = %s AND granted_at IS NOT NULL",
                (site, ip_hash),
            )
            row = await cur.fetchone()
            return row[0] if row else None

    # --- promos and audit ---------------------------------------------------------------

    async def promos(self) -> list[Promo]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT {', '.join(PROMO_COLUMNS)} FROM portal_promos")
            return [to_promo(r) for r in await cur.fetchall()]

    async def promo_rows(self) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {', '.join(PROMO_COLUMNS)}, updated_at FROM portal_promos ORDER BY id"
            )
            return await cur.fetchall()

    async def upsert_promo(self, row: dict[str, Any], actor: str, action: str) -> None:
        row = {**PROMO_DEFAULTS, **row}
        values = [Jsonb(row[c]) if c == "variants" else row.get(c) for c in PROMO_COLUMNS]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in PROMO_COLUMNS[1:])
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO portal_promos ({', '.join(PROMO_COLUMNS)}) VALUES"
                f" ({', '.join(['%s'] * len(PROMO_COLUMNS))})"
                f" ON CONFLICT (id) DO UPDATE SET {sets}, updated_at = now()",
                values,
            )
            await _audit(conn, actor, action, row["id"], row)

    async def set_image(self, promo: str, image: str, actor: str) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE portal_promos SET image = %s, updated_at = now() WHERE id = %s",
                (image, promo),
            )
            if cur.rowcount:
                await _audit(conn, actor, "image", promo, {"image": image})
            return cur.rowcount > 0

    async def delete_promo(self, promo: str, actor: str) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("DELETE FROM portal_promos WHERE id = %s", (promo,))
            if cur.rowcount:
                await _audit(conn, actor, "delete", promo, {})
            return cur.rowcount > 0

    async def seed_promos(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert starter promos only into an empty table (never overwrites admin edits)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM portal_promos")
            count = await cur.fetchone()
            if count and count[0]:
                return 0
        n = 0
        for row in rows:
            await self.upsert_promo(row, "system", "seed")
            n += 1
        return n

    async def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT at, actor, action, target, detail FROM portal_audit"
                " ORDER BY id DESC LIMIT %s",
                (limit,),
            )
            return await cur.fetchall()


async def _audit(conn: Any, actor: str, action: str, target: str, detail: Any) -> None:
    await conn.execute(
        "INSERT INTO portal_audit (actor, action, target, detail) VALUES (%s,%s,%s,%s)",
        (actor, action, target, Jsonb(_jsonable(detail))),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_promo(r: dict[str, Any]) -> Promo:
    return Promo(
        id=r["id"],
        kind=r["kind"],
        variants=r["variants"],
        url=r["url"],
        site_ref=r["site_ref"],
        image=r["image"],
        sites=tuple(r["sites"] or ()),
        languages=tuple(r["languages"] or ()),
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        priority=r["priority"],
        active=r["active"],
    )
