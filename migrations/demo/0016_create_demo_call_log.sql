-- Every execution of the demo's outside call, with its time span and the executor that ran
-- it: the crash test checks that no two executions of one step overlap.
CREATE TABLE demo_call_log (
    id UUID PRIMARY KEY,
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    generation INT8 NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ NOT NULL
);
