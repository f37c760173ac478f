-- The demo's "remote" side: what its outside call (the notify step) recorded, by key.
CREATE TABLE demo_calls (
    key TEXT PRIMARY KEY,
    saga_id UUID NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);
