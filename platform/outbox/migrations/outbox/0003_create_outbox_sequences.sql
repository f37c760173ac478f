-- The last sequence given to each aggregate's events. The writer bumps it with an upsert
-- whose row lock orders the aggregate's writers; it outlives the outbox rows the relay
-- deletes, so sequences never restart.
CREATE TABLE outbox_sequences (
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    last_sequence INT8 NOT NULL,
    PRIMARY KEY (aggregatetype, aggregateid)
);
