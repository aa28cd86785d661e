-- Identity check-ins from supervised persons' phones, one partition per UTC
-- day like track_fixes (created on demand, dropped after the same
-- WARDSTREAM_TRACK_RETENTION_DAYS). A phone maps to its person through
-- `devices`, as a wristband does. `verified` is the judgement made when the
-- check-in was stored, against `min_score` of the person's checkin rule then
-- in force; both are NULL when no order with a checkin rule named the phone.
-- The same device and time is the same check-in: a replayed batch adds nothing.
CREATE TABLE checkins (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    accuracy_m   double precision NOT NULL,
    face_score   double precision,
    action_ok    boolean,
    method       text,
    request_id   text,
    min_score    double precision,
    verified     boolean,
    PRIMARY KEY (device_id, ts)
) PARTITION BY RANGE (ts);
