-- Route table versions: every change to the routing (a four-eyes proposal, a rollback, an
-- automatic rollback) is a full snapshot stored under a new version number. The number is
-- assigned by the gateway inside the SERIALIZABLE transaction that activates it (the active
-- version + 1), so no sequence is needed. Rows are never updated or deleted.
CREATE TABLE route_versions (
    version INT8 PRIMARY KEY CHECK (version >= 0),
    based_on INT8,
    kind TEXT NOT NULL CHECK (kind IN ('initial', 'change', 'rollback', 'automatic_rollback')),
    proposal_id UUID,
    rolled_back_to INT8,
    proposed_by TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    activated_at TIMESTAMPTZ NOT NULL
);
