-- Leave (请假外出): a supervised person's request to travel, its decision and
-- its return. An approved leave becomes an exemption of the person's order
-- (a new order version); the row keeps the workflow.
--
-- `state` holds what people decided: requested, approved, rejected,
-- cancelled, or ended when an officer recorded the return. Whether an
-- approved leave is active or over follows the clock and is computed on read
-- by wardstream_leave_state() with the service's time, never stored.
-- `level` is the authority the request needs (office up to
-- WARDSTREAM_LEAVE_OFFICE_MAX_DAYS days, county beyond) until it is decided,
-- then the authority that approved it.
CREATE TABLE leaves (
    id               bigserial PRIMARY KEY,
    person_id        text NOT NULL,
    jurisdiction     text NOT NULL CHECK (jurisdiction ~ '^[0-9]{0,6}$'),
    from_at          timestamptz NOT NULL,
    until_at         timestamptz NOT NULL,
    rules            jsonb NOT NULL,
    temporary_rules  jsonb NOT NULL DEFAULT '[]',
    reason           text NOT NULL,
    requested_by     text NOT NULL,
    requested_at     timestamptz NOT NULL,
    state            text NOT NULL DEFAULT 'requested'
                     CHECK (state IN ('requested', 'approved', 'rejected', 'ended', 'cancelled')),
    decided_by       text,
    decided_at       timestamptz,
    level            text NOT NULL CHECK (level IN ('office', 'county')),
    note             text,
    returned_at      timestamptz,
    CHECK (until_at > from_at)
);
CREATE INDEX leaves_jurisdiction ON leaves (jurisdiction text_pattern_ops);
CREATE INDEX leaves_person ON leaves (person_id, from_at);

-- The state a leave is in at `now`: an approved leave is active from its
-- `from` and ended at its `until`; every other state is as decided.
CREATE FUNCTION wardstream_leave_state(state text, from_at timestamptz, until_at timestamptz,
                                       now timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN state = 'approved' AND now >= until_at THEN 'ended'
                WHEN state = 'approved' AND now >= from_at THEN 'active'
                ELSE state END
$$;
