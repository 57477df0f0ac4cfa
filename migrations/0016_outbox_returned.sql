-- Broker messages RabbitMQ returned (published `mandatory`, no queue bound to their routing key): moved here
-- from `outbox` in the transaction that deletes the confirmed batch, instead of being deleted with it. Shown
-- in /health (broker.returned_kept), aged out after OUTBOX_MAX_AGE_HOURS from their last return (counted and
-- logged), and put back into the outbox by `npm run cli -- returned --requeue` once a queue is bound.
CREATE TABLE IF NOT EXISTS outbox_returned (
    position BIGSERIAL PRIMARY KEY,
    id VARCHAR(400) NOT NULL,                    -- the message id, as in outbox
    kind VARCHAR(40) NOT NULL,
    routing_key TEXT NOT NULL,
    body TEXT NOT NULL,                          -- the JSON body exactly as published
    exchange TEXT NOT NULL,                      -- the broker exchange it was published to
    reply_code INTEGER,                          -- the broker's reason (312 NO_ROUTE)
    reply_text TEXT,
    created_at TIMESTAMPTZ NOT NULL,             -- when it was staged in the outbox
    returned_at TIMESTAMPTZ NOT NULL,            -- its last return; OUTBOX_MAX_AGE_HOURS ages it out from here
    times_returned INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_outbox_returned_id ON outbox_returned (id);
CREATE INDEX IF NOT EXISTS idx_outbox_returned_returned_at ON outbox_returned (returned_at);
