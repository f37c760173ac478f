-- Which relay publishes which outbox partition, until when. `generation` grows by one each
-- time a partition changes hands: a relay deletes published rows only while the lease row
-- still names it with the generation it claimed (fencing). Rows are created by the relay.
CREATE TABLE outbox_leases (
    partition INT8 PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',
    expires_at TIMESTAMPTZ NOT NULL,
    generation INT8 NOT NULL DEFAULT 0
);
