-- Four-eyes proposals for a new route table version: a complete rule set and/or ownership
-- changes (or a rollback to an earlier version's snapshot), made against the version that
-- was active (`base_version`). Approved by someone other than the author, then active at
-- once or at `activate_at`. A proposal whose base is no longer active when it would
-- activate becomes 'stale'. `rules` and `ownership` hold the proposal's request payload as
-- the gateway validated it; SQL never looks inside them.
CREATE TABLE route_proposals (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('change', 'rollback')),
    base_version INT8 NOT NULL,
    rules JSONB,
    ownership JSONB NOT NULL,
    rollback_to INT8,
    activate_at TIMESTAMPTZ,
    reason TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('proposed', 'scheduled', 'active', 'rejected', 'stale')),
    decided_by TEXT,
    decided_at TIMESTAMPTZ,
    decision_reason TEXT,
    activated_version INT8,
    activated_at TIMESTAMPTZ
);
