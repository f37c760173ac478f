-- A consumer's inbox: the events it has processed, by event id, recorded in the same
-- transaction as the processing, so a redelivered event is recognised and skipped.
CREATE TABLE inbox (
    consumer TEXT NOT NULL,
    event_id UUID NOT NULL,
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    aggregate_sequence INT8 NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
