-- Live feed through PostgreSQL: every committed lifecycle event is announced on
-- the channel wardstream_events_<schema> with its id, so every API process
-- (whichever process's sink or workflow wrote it) can push it to its
-- WebSocket clients. NOTIFY is delivered at commit, so only durable events
-- are announced.
CREATE FUNCTION wardstream_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wardstream_events_' || TG_TABLE_SCHEMA, NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER alert_events_notify AFTER INSERT ON alert_events
    FOR EACH ROW EXECUTE FUNCTION wardstream_notify_event();
