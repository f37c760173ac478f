-- The transactional outbox: events written in the transaction of the change they describe.
-- The outbox library owns it (platform/outbox/migrations/outbox); the runner creates it in
-- the schema of every component that lists `outbox` in its migrations/<component>/uses.
-- Debezium's column names where it has them (id, aggregatetype, aggregateid, type, payload), keyed by the
-- per-aggregate order the relay publishes in, with the relay partition computed in Rust.
CREATE TABLE outbox (
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    aggregate_sequence INT8 NOT NULL,
    id UUID NOT NULL,
    type TEXT NOT NULL,
    payload JSONB NOT NULL,
    trace_context TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    partition INT8 NOT NULL,
    PRIMARY KEY (aggregatetype, aggregateid, aggregate_sequence)
);
