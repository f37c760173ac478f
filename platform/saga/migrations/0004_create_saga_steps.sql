-- Step history: one row for every attempt of an action (do), a compensation (undo) or a
-- query, with the executor and fencing generation that ran it.
CREATE TABLE saga_steps (
    saga_id UUID NOT NULL,
    id UUID NOT NULL,
    step INT8 NOT NULL,
    step_name TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('do', 'undo', 'query')),
    attempt INT8 NOT NULL,
    generation INT8 NOT NULL,
    owner TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ NOT NULL,
    outcome TEXT NOT NULL,
    output JSONB,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (saga_id, id)
);
