-- Screening's blocklist: creditor accounts (or names) payments must not go to.
CREATE TABLE blocklist (
    entry TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    added_at TIMESTAMPTZ NOT NULL
);
