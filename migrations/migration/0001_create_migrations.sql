-- Migrations of a product's accounts from the legacy core to the modern one (ADR 0013): one
-- row per request, planned from one export of the legacy books (`journal`).
CREATE TABLE migrations (
    id UUID PRIMARY KEY,
    product_code TEXT NOT NULL,
    fraction TEXT NOT NULL,
    dry_run BOOL NOT NULL,
    requested_by TEXT NOT NULL,
    journal INT8 NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
