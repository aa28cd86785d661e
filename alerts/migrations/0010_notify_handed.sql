-- Claim before send: `handed_at` is set just before each attempt to hand a
-- page to its channel and cleared when the attempt is over, so a row left
-- `sending` with `handed_at` set is a page that was on the wire when its
-- notifier stopped. A restarted notifier re-sends such a page only on a
-- channel whose receiver recognises a repeat (the webhook's delivery
-- identity); on the others the row becomes `unconfirmed`: it may or may not
-- have arrived, and it is not sent again.
ALTER TABLE notify_deliveries ADD COLUMN handed_at timestamptz;
ALTER TABLE notify_deliveries DROP CONSTRAINT notify_deliveries_status_check;
ALTER TABLE notify_deliveries ADD CONSTRAINT notify_deliveries_status_check
    CHECK (status IN ('sending', 'sent', 'failed', 'unconfirmed'));
