-- The transactional outbox: events written in the same transaction as the change they
-- describe. Column names follow Debezium's outbox router where it has one (id,
-- aggregatetype, aggregateid, type, payload).
-- The key is the per-aggregate order the relay publishes in; `id` is the event id that
-- consumers deduplicate on.
CREATE TABLE outbox (
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    aggregate_sequence INT8 NOT NULL,
    id UUID NOT NULL,
    type TEXT NOT NULL,
    payload JSONB NOT NULL,
    trace_context TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (aggregatetype, aggregateid, aggregate_sequence)
);
