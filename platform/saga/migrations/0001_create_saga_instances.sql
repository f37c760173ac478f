-- Saga instances: one row per saga, the whole of its durable state. The saga library owns
-- these tables (platform/saga/migrations); the runner creates them in the schema of every
-- component that lists `saga` in its migrations/<component>/uses.
CREATE TABLE saga_instances (
    id UUID PRIMARY KEY,
    saga_type TEXT NOT NULL,
    version INT8 NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'compensating', 'completed', 'compensated', 'paused')),
    input JSONB NOT NULL,
    outputs JSONB NOT NULL,
    current_step INT8 NOT NULL,
    attempts INT8 NOT NULL DEFAULT 0,
    awaiting_query BOOL NOT NULL DEFAULT false,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_expires_at TIMESTAMPTZ,
    generation INT8 NOT NULL DEFAULT 0,
    business_key TEXT NOT NULL DEFAULT '',
    failure TEXT NOT NULL DEFAULT '',
    paused_reason TEXT NOT NULL DEFAULT '',
    paused_from TEXT NOT NULL DEFAULT '',
    deadline_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
