-- Holds: the state of each pending entry. Resolving one writes a new entry and moves the
-- hold to posted, voided or expired exactly once.
CREATE TABLE holds (
    entry_id UUID PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    expires_at TIMESTAMPTZ,
    resolved_by UUID,
    resolved_at TIMESTAMPTZ
);
