-- Explicit account ownership of each version: the side that is primary for an account
-- whatever the rules say (accounts migrated, or moved back). Part of the version's snapshot.
CREATE TABLE route_ownership (
    version INT8 NOT NULL,
    account_id TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('legacy', 'modern')),
    PRIMARY KEY (version, account_id)
);
