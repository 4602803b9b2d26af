-- Captive portal: promos (admin-managed), visits, the promo funnel, consent records, audit.
-- Nothing here holds a raw MAC: client_id is the edge's keyed HMAC (daily key), and the
-- only address kept is client_ip_hash (same key) for the RFC 8908 captive API lookup.

CREATE TABLE IF NOT EXISTS portal_promos (
    id          text        PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('attraction', 'event', 'app')),
    -- {"vi": {"title": .., "body": ..}, "en": {...}} per variant key: {"a": {...}, "b": {...}}
    variants    jsonb       NOT NULL,
    url         text,
    site_ref    text,                   -- attraction promos: the site they advertise
    image       text,                   -- content hash of the resized image, if any
    sites       text[]      NOT NULL DEFAULT '{}',  -- empty = every site
    languages   text[]      NOT NULL DEFAULT '{}',  -- empty = every language
    starts_at   timestamptz,
    ends_at     timestamptz,
    priority    integer     NOT NULL DEFAULT 0,
    active      boolean     NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per splash-page visit. Stage times are set once (COALESCE), so a replayed form
-- or grant can never move the funnel twice.
CREATE TABLE IF NOT EXISTS portal_visits (
    portal_session  text        PRIMARY KEY,
    site            text        NOT NULL,
    client_id       text        NOT NULL,
    client_ip_hash  text,
    controller      text        NOT NULL,
    language        text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    accepted_at     timestamptz,
    granted_at      timestamptz,
    grant_expires   timestamptz
);
CREATE INDEX IF NOT EXISTS portal_visits_site_time ON portal_visits (site, created_at);
CREATE INDEX IF NOT EXISTS portal_visits_ip ON portal_visits (client_ip_hash, granted_at);

CREATE TABLE IF NOT EXISTS portal_promo_impressions (
    portal_session  text        NOT NULL REFERENCES portal_visits ON DELETE CASCADE,
    promo_id        text        NOT NULL,
    variant         text        NOT NULL,
    shown_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portal_session, promo_id)
);
CREATE INDEX IF NOT EXISTS portal_promo_impressions_promo ON portal_promo_impressions (promo_id);

CREATE TABLE IF NOT EXISTS portal_promo_clicks (
    portal_session  text        NOT NULL REFERENCES portal_visits ON DELETE CASCADE,
    promo_id        text        NOT NULL,
    variant         text        NOT NULL,
    first_click_at  timestamptz NOT NULL DEFAULT now(),
    clicks          integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (portal_session, promo_id)
);

-- Consent records (PDP Law 2025 / Decree 356/2025): who (pseudonymous), which purposes,
-- which notice version, when; withdrawal is a timestamp, never a delete, so the record of
-- what was agreed survives.
CREATE TABLE IF NOT EXISTS portal_consents (
    id              bigserial   PRIMARY KEY,
    client_id       text        NOT NULL,
    site            text        NOT NULL,
    portal_session  text        NOT NULL,
    purpose         text        NOT NULL CHECK (purpose IN ('network_access', 'marketing')),
    terms_version   text        NOT NULL,
    notice_version  text        NOT NULL,
    language        text        NOT NULL,
    given_at        timestamptz NOT NULL DEFAULT now(),
    withdrawn_at    timestamptz,
    UNIQUE (portal_session, purpose)
);
CREATE INDEX IF NOT EXISTS portal_consents_client ON portal_consents (client_id);

CREATE TABLE IF NOT EXISTS portal_audit (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL,
    detail  jsonb       NOT NULL DEFAULT '{}'
);
