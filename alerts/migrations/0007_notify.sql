-- Notifications: who is paged for which alerts, the duty roster, and the
-- delivery log that makes paging idempotent across restarts and replays.

-- A notification policy: alerts whose jurisdiction starts with
-- `jurisdiction_prefix`, of these severities / kinds (NULL = any), at this
-- escalation tier, on these lifecycle events, page `recipient` on `channel`.
-- recipient 'duty' means the officer on the duty roster of the tier's
-- jurisdiction at the alert's time; anything else is a literal address.
CREATE TABLE notify_policies (
    policy_id            bigserial PRIMARY KEY,
    jurisdiction_prefix  text NOT NULL DEFAULT '',
    severities           text[],
    kinds                text[],
    tier                 text NOT NULL DEFAULT 'county' CHECK (tier IN ('county', 'city', 'province')),
    events               text[] NOT NULL DEFAULT '{opened,escalated}',
    channel              text NOT NULL CHECK (channel IN ('webhook', 'email', 'sms', 'dingtalk', 'wecom', 'mqtt')),
    recipient            text NOT NULL,
    quiet_start          time,
    quiet_end            time,
    quiet_tz             text NOT NULL DEFAULT 'Asia/Shanghai',
    enabled              boolean NOT NULL DEFAULT true,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_policies_prefix ON notify_policies (jurisdiction_prefix text_pattern_ops);

-- 值班表: who is on duty for a jurisdiction, when, and how to reach them
-- (channel -> address, e.g. {"email": "a@b", "sms": "+86...", "webhook": "https://..."}).
CREATE TABLE duty_rosters (
    shift_id      bigserial PRIMARY KEY,
    jurisdiction  text NOT NULL,
    officer       text NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    contacts      jsonb NOT NULL DEFAULT '{}',
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX duty_rosters_at ON duty_rosters (jurisdiction, starts_at, ends_at);

-- One row per (alert, lifecycle step, recipient, channel): a restart or a
-- replay of the alerts topic finds the row and does not page again.
CREATE TABLE notify_deliveries (
    alert_id      text NOT NULL,
    step          text NOT NULL,
    recipient     text NOT NULL,
    channel       text NOT NULL,
    jurisdiction  text NOT NULL DEFAULT '',
    severity      text NOT NULL DEFAULT '',
    status        text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    latency_ms    double precision,
    error         text,
    first_at      timestamptz NOT NULL DEFAULT now(),
    last_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, step, recipient, channel)
);
CREATE INDEX notify_deliveries_failed ON notify_deliveries (status, jurisdiction text_pattern_ops);
