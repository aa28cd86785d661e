-- Claim before send: `handed_at` is set just before each attempt to hand a
-- page to its channel and cleared when the attempt is over, so a row left
-- `sending` with `handed_at` set is a page that was on the wire when its
-- notifier stopped. A restarted notifier sends such a page again, with the
-- same delivery id (webhook header, e-mail Message-ID, page reference in
-- the text), and sets `resent`: the page may have reached its receiver
-- twice. An attempt that follows one left without an answer in time sets
-- `resent` as well.
ALTER TABLE notify_deliveries ADD COLUMN handed_at timestamptz;
ALTER TABLE notify_deliveries ADD COLUMN resent boolean NOT NULL DEFAULT false;
