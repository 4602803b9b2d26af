-- Portal privacy (issue 12): retention by age, and data-subject requests (Vietnam's PDPL).
-- Retention deletes by created_at / given_at, which the existing (site, created_at) and
-- (client_id) indexes cannot serve.
CREATE INDEX IF NOT EXISTS portal_visits_created ON portal_visits (created_at);
CREATE INDEX IF NOT EXISTS portal_consents_given ON portal_consents (given_at);
CREATE INDEX IF NOT EXISTS portal_visits_client ON portal_visits (client_id);

-- One row per data-subject request. It names the pseudonymous client id of the portal
-- session it was made from (never a MAC) and only a hash of the verification code the
-- subject was shown; the steps are also written to portal_audit.
CREATE TABLE IF NOT EXISTS portal_dsr (
    id                  bigserial   PRIMARY KEY,
    kind                text        NOT NULL CHECK (kind IN ('access', 'erasure')),
    client_id           text        NOT NULL,
    site                text        NOT NULL,
    portal_session      text        NOT NULL,
    code_hash           text        NOT NULL,
    status              text        NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'verified', 'completed', 'rejected')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    verified_at         timestamptz,
    completed_at        timestamptz,
    verified_by         text,
    completed_by        text,
    result              jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS portal_dsr_status ON portal_dsr (status, created_at);
