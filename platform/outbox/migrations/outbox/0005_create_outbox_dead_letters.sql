-- Events the sink refused for good (status `refused`), and the later events of the same
-- aggregate held behind them (status `parked`) so that nothing overtakes a refused event.
-- `corebank outbox replay` (corebank_outbox::replay_dead_letters) moves them back.
CREATE TABLE outbox_dead_letters (
    aggregatetype TEXT NOT NULL,
    aggregateid TEXT NOT NULL,
    aggregate_sequence INT8 NOT NULL,
    id UUID NOT NULL,
    type TEXT NOT NULL,
    payload JSONB NOT NULL,
    trace_context TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    partition INT8 NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('refused', 'parked')),
    reason TEXT NOT NULL,
    dead_lettered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (aggregatetype, aggregateid, aggregate_sequence)
);
