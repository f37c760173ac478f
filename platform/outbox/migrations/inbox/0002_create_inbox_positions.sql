-- The last aggregate sequence each consumer processed per aggregate: an older one is a
-- duplicate, a jump past the next one is a gap to wait out.
CREATE TABLE inbox_positions (
    consumer TEXT NOT NULL,
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    last_sequence INT8 NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, aggregatetype, aggregateid)
);
