-- The one row every gateway replica polls: which route table version is active. Changing
-- it is how a version becomes active (in the transaction that writes the version).
CREATE TABLE route_active (
    id INT8 PRIMARY KEY CHECK (id = 1),
    version INT8 NOT NULL,
    activated_at TIMESTAMPTZ NOT NULL
);
