-- One row per effect a demo step applied, keyed by the step's idempotency key, so an action
-- run twice applies once and a test can count what was applied.
CREATE TABLE demo_effects (
    key TEXT PRIMARY KEY,
    saga_id UUID NOT NULL,
    step TEXT NOT NULL,
    direction TEXT NOT NULL,
    owner TEXT NOT NULL,
    generation INT8 NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);
