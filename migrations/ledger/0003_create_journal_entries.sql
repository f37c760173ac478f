-- Journal entries: immutable once written. The id is the client's idempotency key; the
-- canonical request is kept to tell a replay from a conflicting reuse of the id.
CREATE TABLE journal_entries (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('posted', 'pending', 'post_pending', 'void_pending', 'expire_pending', 'reversal')),
    linked_entry_id UUID,
    value_date DATE NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    external_ref TEXT NOT NULL DEFAULT '',
    metadata JSONB NOT NULL,
    request JSONB NOT NULL,
    chain_partition INT8 NOT NULL,
    chain_sequence INT8 NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
