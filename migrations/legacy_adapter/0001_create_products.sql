-- The canonical product catalogue the adapter serves (the core knows only categories): one
-- row per product version, the canonical definition stored whole as its protobuf encoding.
CREATE TABLE products (
    code TEXT NOT NULL,
    version INT8 NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('current', 'savings')),
    currency TEXT NOT NULL,
    per_transfer_limit NUMERIC(28, 6),
    daily_transfer_limit NUMERIC(28, 6),
    definition BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (code, version)
);
