-- Dispatch: who was sent to an alert and when they got there, and a note
-- thread per alert. Times feed the response-time figures.
CREATE TABLE dispatches (
    alert_id       text PRIMARY KEY REFERENCES alerts (alert_id),
    assignee       text NOT NULL,
    unit           text,
    status         text NOT NULL CHECK (status IN ('dispatched', 'en_route', 'on_scene', 'resolved')),
    dispatched_at  timestamptz NOT NULL,
    dispatched_by  text NOT NULL,
    en_route_at    timestamptz,
    on_scene_at    timestamptz,
    resolved_at    timestamptz
);

CREATE TABLE alert_notes (
    note_id    bigserial PRIMARY KEY,
    alert_id   text NOT NULL REFERENCES alerts (alert_id),
    at         timestamptz NOT NULL,
    operator   text NOT NULL,
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000)
);
CREATE INDEX alert_notes_alert ON alert_notes (alert_id, at);
