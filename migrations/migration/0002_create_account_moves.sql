-- Each account of a migration and its move: planned (a saga moves it), refused by the plan
-- (`reason` starts with the stable code), then moving, moved or failed as its saga goes.
-- `snapshot` is what the legacy core answered when the account was frozen.
CREATE TABLE account_moves (
    migration_id UUID NOT NULL,
    account_id UUID NOT NULL,
    legacy_account_number TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'moving', 'moved', 'refused', 'failed')),
    reason TEXT NOT NULL DEFAULT '',
    posted TEXT NOT NULL DEFAULT '',
    held TEXT NOT NULL DEFAULT '',
    holds INT8 NOT NULL DEFAULT 0,
    modern_id TEXT NOT NULL DEFAULT '',
    saga_id UUID,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (migration_id, account_id)
);
