-- The transactional outbox: broker messages staged in the same transaction as the rows (gaps, alerts) they
-- describe, deleted only once the broker confirmed them (src/publish/publisher.ts reads it in position order).
CREATE TABLE IF NOT EXISTS outbox (
    position BIGSERIAL PRIMARY KEY,              -- staging order: the publisher reads by it
    id VARCHAR(400) NOT NULL,                    -- the message id (deterministic: the row's id, a gap's id and state)
    kind VARCHAR(40) NOT NULL,                   -- large_trade | liquidation | funding | open_interest | orderbook | gap | alert
    routing_key TEXT NOT NULL,
    body TEXT NOT NULL,                          -- the JSON body exactly as published
    created_at TIMESTAMPTZ NOT NULL              -- when it was staged: OUTBOX_MAX_AGE_HOURS ages it out from here
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_outbox_id ON outbox (id);
CREATE INDEX IF NOT EXISTS idx_outbox_created_at ON outbox (created_at);

-- One pending webhook POST per alert and webhook, stored with the alert; deleted on a 2xx, or when given up.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    position BIGSERIAL PRIMARY KEY,
    alert_id VARCHAR(255) NOT NULL,
    rule VARCHAR(64) NOT NULL,
    webhook VARCHAR(100) NOT NULL,               -- the webhook's name in the rules file
    body TEXT NOT NULL,                          -- the JSON body exactly as POSTed (and signed)
    created_at TIMESTAMPTZ NOT NULL              -- give_up_after_seconds counts from here
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_alert_deliveries_alert_webhook ON alert_deliveries (alert_id, webhook);
CREATE INDEX IF NOT EXISTS idx_alert_deliveries_webhook_position ON alert_deliveries (webhook, position);
