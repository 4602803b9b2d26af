-- Alerts with their lifecycle, audit trail and incident grouping.
-- At most one active alert per (originator, type) is enforced by the database itself
-- (partial unique index), so two racing rule evaluations cannot open duplicates.
CREATE TABLE IF NOT EXISTS incidents (
    id             bigserial   PRIMARY KEY,
    site           text        NOT NULL,
    opened_at      timestamptz NOT NULL,
    last_alert_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_site_recent ON incidents (site, last_alert_at DESC);

CREATE TABLE IF NOT EXISTS alerts (
    id                 bigserial   PRIMARY KEY,
    originator         text        NOT NULL,
    site               text        NOT NULL,
    type               text        NOT NULL,
    severity           smallint    NOT NULL CHECK (severity BETWEEN 1 AND 4),
    state              text        NOT NULL CHECK (state IN
                         ('ACTIVE_UNACK', 'ACTIVE_ACK', 'CLEARED_UNACK', 'CLEARED_ACK')),
    created_at         timestamptz NOT NULL,
    last_triggered_at  timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    trigger_count      integer     NOT NULL DEFAULT 1,
    assignee           text,
    details            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    escalations        integer     NOT NULL DEFAULT 0,
    last_escalated_at  timestamptz,
    incident_id        bigint      NOT NULL REFERENCES incidents (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active
    ON alerts (originator, type) WHERE state IN ('ACTIVE_UNACK', 'ACTIVE_ACK');
CREATE INDEX IF NOT EXISTS alerts_recent ON alerts (updated_at DESC);
CREATE INDEX IF NOT EXISTS alerts_site ON alerts (site, created_at DESC);

CREATE TABLE IF NOT EXISTS alert_history (
    id          bigserial   PRIMARY KEY,
    alert_id    bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    from_state  text,
    to_state    text        NOT NULL,
    note        text
);
CREATE INDEX IF NOT EXISTS alert_history_alert ON alert_history (alert_id, id);
