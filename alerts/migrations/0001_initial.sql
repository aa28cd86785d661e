-- wardstream command-centre store, version 1.
-- Every object is created unqualified, in the schema the connection's
-- search_path names first (WARDSTREAM_DATABASE_SCHEMA), so tests and sites
-- can keep several stores in one database.

-- People under supervision and the devices they wear. Rows are derived from
-- the current order version; the history lives in `orders`.
CREATE TABLE persons (
    person_id     text PRIMARY KEY,
    jurisdiction  text NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX persons_jurisdiction ON persons (jurisdiction text_pattern_ops);

-- Which person wore which device when (from the orders' validity).
CREATE TABLE devices (
    device_id     text NOT NULL,
    person_id     text NOT NULL,
    valid_from    timestamptz NOT NULL DEFAULT '-infinity',
    valid_until   timestamptz NOT NULL DEFAULT 'infinity',
    PRIMARY KEY (device_id, person_id, valid_from)
);
CREATE INDEX devices_person ON devices (person_id);

-- Supervision orders, one row per version; never updated in place.
CREATE TABLE orders (
    person_id     text NOT NULL,
    version       integer NOT NULL,
    jurisdiction  text NOT NULL,
    valid_from    timestamptz,
    valid_until   timestamptz,
    body          jsonb,                -- NULL = the order was removed in this version
    created_at    timestamptz NOT NULL,
    created_by    text NOT NULL,
    PRIMARY KEY (person_id, version)
);
CREATE INDEX orders_jurisdiction ON orders (jurisdiction text_pattern_ops);

-- Zones (GeoJSON features), one row per version; never updated in place.
CREATE TABLE zones (
    zone_id       text NOT NULL,
    version       integer NOT NULL,
    jurisdiction  text NOT NULL DEFAULT '',
    feature       jsonb,                -- NULL = removed in this version
    created_at    timestamptz NOT NULL,
    created_by    text NOT NULL,
    PRIMARY KEY (zone_id, version)
);

-- One row per alert episode: the latest snapshot plus the workflow state.
CREATE TABLE alerts (
    alert_id         text PRIMARY KEY,
    person_id        text,
    rule_id          text NOT NULL,
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('red', 'orange', 'yellow', 'blue')),
    jurisdiction     text NOT NULL DEFAULT '',
    opened_at        timestamptz NOT NULL,
    cleared_at       timestamptz,
    snapshot_at      timestamptz NOT NULL,     -- event time of the snapshot held
    lat              double precision,
    lon              double precision,
    late             boolean NOT NULL DEFAULT false,
    device_id        text,
    zone             text,
    evidence         text,
    reason           text,
    first_seen_at    timestamptz NOT NULL,     -- wall clock when the store first saw it
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    resolution_note  text,
    tier             text NOT NULL DEFAULT 'county' CHECK (tier IN ('county', 'city', 'province')),
    escalated_at     timestamptz,
    status           text GENERATED ALWAYS AS (
        CASE WHEN resolved_at IS NOT NULL THEN 'resolved'
             WHEN acknowledged_at IS NOT NULL THEN 'acknowledged'
             WHEN cleared_at IS NOT NULL THEN 'cleared'
             ELSE 'open' END) STORED
);
CREATE INDEX alerts_jurisdiction ON alerts (jurisdiction text_pattern_ops);
CREATE INDEX alerts_opened ON alerts (opened_at DESC, alert_id);
CREATE INDEX alerts_person ON alerts (person_id);
CREATE INDEX alerts_escalation ON alerts (tier, first_seen_at)
    WHERE acknowledged_at IS NULL AND resolved_at IS NULL;

-- Append-only lifecycle history. `dedup` is the SHA-256 of the record as
-- jsonb text (canonical), so the same record consumed twice is one row.
CREATE TABLE alert_events (
    id            bigserial PRIMARY KEY,
    alert_id      text NOT NULL,
    event         text NOT NULL,
    at            timestamptz,
    recorded_at   timestamptz NOT NULL,
    operator      text,
    note          text,
    tier          text,
    record        jsonb NOT NULL,
    dedup         bytea NOT NULL UNIQUE
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);

CREATE TABLE operators (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('viewer', 'operator', 'supervisor', 'admin')),
    jurisdiction   text NOT NULL CHECK (jurisdiction ~ '^[0-9]{0,6}$'),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Login sessions. Only the SHA-256 of a token is kept.
CREATE TABLE sessions (
    token_hash   bytea PRIMARY KEY,
    operator_id  bigint NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    remote       text
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Append-only audit trail: who did or read what, when, from where.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    operator  text,
    action    text NOT NULL,
    target    text,
    detail    jsonb,
    remote    text
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Lifecycle records written by the API (ack, resolve, escalate) waiting to
-- be published on wardstream.alerts: the transactional outbox.
CREATE TABLE outbox (
    id     bigserial PRIMARY KEY,
    topic  text NOT NULL,
    key    text,
    value  jsonb
);

-- Latest known position per device (for the live map).
CREATE TABLE latest_positions (
    device_id    text PRIMARY KEY,
    ts           timestamptz NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    accuracy_m   double precision
);

-- Position history, one partition per UTC day (created on demand, dropped
-- after WARDSTREAM_TRACK_RETENTION_DAYS).
CREATE TABLE track_fixes (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    accuracy_m   double precision NOT NULL,
    valid        boolean NOT NULL,
    speed_mps    double precision,
    heading_deg  double precision,
    battery_pct  double precision
) PARTITION BY RANGE (ts);
CREATE INDEX track_fixes_device_ts ON track_fixes (device_id, ts);

-- Append-only enforcement that holds even for the table owner.
CREATE FUNCTION wardstream_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION wardstream_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION wardstream_append_only();
CREATE TRIGGER alert_events_append_only BEFORE UPDATE OR DELETE ON alert_events
    FOR EACH ROW EXECUTE FUNCTION wardstream_append_only();
CREATE TRIGGER alert_events_no_truncate BEFORE TRUNCATE ON alert_events
    FOR EACH STATEMENT EXECUTE FUNCTION wardstream_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, alert_events FROM PUBLIC;

-- Apply one lifecycle record (jsonb, as on wardstream.alerts) idempotently.
-- Returns true when the record was new, false when it had been applied before.
-- The snapshot is merged monotonically: newer event time wins for the
-- snapshot fields, first value wins for workflow timestamps, the tier only
-- rises, so order of arrival within one alert does not matter.
CREATE FUNCTION wardstream_apply_record(rec jsonb, seen_at timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    a        jsonb := rec -> 'alert';
    ev       text := rec ->> 'event';
    ev_at    timestamptz := (rec ->> 'at')::timestamptz;
    snap_at  timestamptz;
    new_id   bigint;
    tier_rank constant jsonb := '{"county": 0, "city": 1, "province": 2}';
BEGIN
    INSERT INTO alert_events (alert_id, event, at, recorded_at, operator, note, tier, record, dedup)
    VALUES (a ->> 'alert_id', ev, ev_at, seen_at, rec ->> 'operator', rec ->> 'note',
            rec ->> 'tier', rec, sha256(convert_to(rec::text, 'UTF8')))
    ON CONFLICT (dedup) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL THEN
        RETURN false;
    END IF;
    snap_at := COALESCE((a ->> 'updated_at')::timestamptz, (a ->> 'cleared_at')::timestamptz,
                        (a ->> 'opened_at')::timestamptz);
    INSERT INTO alerts AS t (alert_id, person_id, rule_id, kind, severity, jurisdiction,
                             opened_at, cleared_at, snapshot_at, lat, lon, late, device_id,
                             zone, evidence, reason, first_seen_at)
    VALUES (a ->> 'alert_id', a ->> 'person_id', a ->> 'rule_id', a ->> 'kind',
            a ->> 'severity', COALESCE(a ->> 'jurisdiction', ''),
            (a ->> 'opened_at')::timestamptz, (a ->> 'cleared_at')::timestamptz, snap_at,
            (a ->> 'lat')::double precision, (a ->> 'lon')::double precision,
            COALESCE((a ->> 'late')::boolean, false), a ->> 'device_id', a ->> 'zone',
            a ->> 'evidence', a ->> 'reason', seen_at)
    ON CONFLICT (alert_id) DO UPDATE SET
        severity    = CASE WHEN EXCLUDED.snapshot_at >= t.snapshot_at THEN EXCLUDED.severity ELSE t.severity END,
        lat         = CASE WHEN EXCLUDED.snapshot_at >= t.snapshot_at THEN EXCLUDED.lat ELSE t.lat END,
        lon         = CASE WHEN EXCLUDED.snapshot_at >= t.snapshot_at THEN EXCLUDED.lon ELSE t.lon END,
        device_id   = COALESCE(CASE WHEN EXCLUDED.snapshot_at >= t.snapshot_at THEN EXCLUDED.device_id END, t.device_id),
        evidence    = COALESCE(CASE WHEN EXCLUDED.snapshot_at >= t.snapshot_at THEN EXCLUDED.evidence END, t.evidence),
        reason      = COALESCE(CASE WHEN EXCLUDED.snapshot_at >= t.snapshot_at THEN EXCLUDED.reason END, t.reason),
        snapshot_at = GREATEST(t.snapshot_at, EXCLUDED.snapshot_at),
        cleared_at  = COALESCE(t.cleared_at, EXCLUDED.cleared_at),
        late        = t.late OR EXCLUDED.late;
    IF ev = 'acknowledged' THEN
        UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, ev_at, seen_at),
                          acknowledged_by = COALESCE(acknowledged_by, rec ->> 'operator')
         WHERE alert_id = a ->> 'alert_id';
    ELSIF ev = 'resolved' THEN
        UPDATE alerts SET resolved_at = COALESCE(resolved_at, ev_at, seen_at),
                          resolved_by = COALESCE(resolved_by, rec ->> 'operator'),
                          resolution_note = COALESCE(resolution_note, rec ->> 'note'),
                          acknowledged_at = COALESCE(acknowledged_at, ev_at, seen_at),
                          acknowledged_by = COALESCE(acknowledged_by, rec ->> 'operator')
         WHERE alert_id = a ->> 'alert_id';
    ELSIF ev = 'escalated' AND rec ? 'tier' AND tier_rank ? (rec ->> 'tier') THEN
        UPDATE alerts SET tier = rec ->> 'tier', escalated_at = COALESCE(ev_at, seen_at)
         WHERE alert_id = a ->> 'alert_id'
           AND (tier_rank ->> tier)::int < (tier_rank ->> (rec ->> 'tier'))::int;
    END IF;
    IF a ->> 'person_id' IS NOT NULL THEN
        INSERT INTO persons (person_id, jurisdiction, updated_at)
        VALUES (a ->> 'person_id', COALESCE(a ->> 'jurisdiction', ''), seen_at)
        ON CONFLICT (person_id) DO NOTHING;
    END IF;
    RETURN true;
END $$;

-- Apply a batch in order; returns the 1-based positions of the new records.
CREATE FUNCTION wardstream_apply_records(batch jsonb, seen_at timestamptz)
RETURNS SETOF integer LANGUAGE plpgsql AS $$
DECLARE
    item record;
BEGIN
    FOR item IN SELECT value, ordinality FROM jsonb_array_elements(batch) WITH ORDINALITY
                ORDER BY ordinality LOOP
        IF wardstream_apply_record(item.value, seen_at) THEN
            RETURN NEXT item.ordinality::integer;
        END IF;
    END LOOP;
END $$;
