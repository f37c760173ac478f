-- How a migration's moves are started (ADR 0013): its feeder starts the planned moves of a
-- `running` migration, at most `rate_per_s` a second (0: as fast as the in-flight window
-- lets), and stops by itself (`stopped`, with the reason) when failed or mismatched moves
-- pass `max_error_ratio` of those settled. An operator pauses it (`paused`) and, under four
-- eyes, resumes it; `fed` once every planned move has started. A resume accepts the errors
-- so far (`errors_accepted`): the ratio counts the moves settled after it. The last change
-- and who made it are kept; the gateway's audit log has every operator's change.
CREATE TABLE migration_controls (
    migration_id UUID PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'stopped', 'fed')),
    rate_per_s INT8 NOT NULL,
    max_error_ratio TEXT NOT NULL,
    errors_accepted INT8 NOT NULL DEFAULT 0,
    settled_accepted INT8 NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    changed_by TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
