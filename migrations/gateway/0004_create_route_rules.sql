-- The route rules of each version: per (product, operation), the default primary side, an
-- optional canary (a side for a percentage of accounts, chosen by a stable hash of the
-- per-rule salt and the account id) and whether the other side gets a shadow copy.
-- `product` is a product code or '*' (any product).
CREATE TABLE route_rules (
    version INT8 NOT NULL,
    product TEXT NOT NULL,
    operation TEXT NOT NULL,
    default_side TEXT NOT NULL CHECK (default_side IN ('legacy', 'modern')),
    canary_side TEXT CHECK (canary_side IN ('legacy', 'modern')),
    canary_percent INT8 CHECK (canary_percent BETWEEN 0 AND 100),
    salt TEXT NOT NULL,
    shadow BOOL NOT NULL,
    PRIMARY KEY (version, product, operation),
    CHECK ((canary_side IS NULL) = (canary_percent IS NULL))
);
