-- The transactional outbox: events written in the same transaction as the change they
-- describe. Column names follow Debezium's outbox router where it has one (id,
-- aggregatetype, aggregateid, type, payload).
CREATE TABLE outbox (
    id UUID PRIMARY KEY,
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    aggregate_sequence INT8 NOT NULL,
    type TEXT NOT NULL,
    payload JSONB NOT NULL,
    trace_context TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (aggregatetype, aggregateid, aggregate_sequence)
);
