-- Shadow comparisons whose answers differed after normalisation: which rule (product,
-- operation), which side answered the caller and which ran as the shadow, the channel
-- request's X-Request-ID, the differing paths ("balances_after.posted: \"59.50\" vs
-- \"60.00\"") and both answers with personal data redacted. Matches are only counted.
CREATE TABLE shadow_mismatches (
    id UUID PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    product TEXT NOT NULL,
    operation TEXT NOT NULL,
    primary_side TEXT NOT NULL CHECK (primary_side IN ('legacy', 'modern')),
    shadow_side TEXT NOT NULL CHECK (shadow_side IN ('legacy', 'modern')),
    request_id TEXT NOT NULL,
    primary_status INT8 NOT NULL,
    shadow_status INT8 NOT NULL,
    differences JSONB NOT NULL,
    primary_answer JSONB NOT NULL,
    shadow_answer JSONB NOT NULL,
    CHECK (primary_side <> shadow_side)
);
