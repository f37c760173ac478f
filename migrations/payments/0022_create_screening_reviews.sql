-- Payments that sanctions screening held for review (a possible hit, ADR 0011), and the
-- four-eyes decision on each: one row a payment, written when screening holds it (`hits`:
-- the list, party id, listed name and score of every possible hit) and completed once by
-- the decision (`decision` is '' while the payment waits). Kept for auditors.
CREATE TABLE screening_reviews (
    payment_id UUID PRIMARY KEY,
    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    screened_name TEXT NOT NULL,
    hits JSONB NOT NULL,
    held_at TIMESTAMPTZ NOT NULL,
    decision TEXT NOT NULL DEFAULT '' CHECK (decision IN ('', 'release', 'refuse')),
    proposed_by TEXT NOT NULL DEFAULT '',
    approved_by TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    decided_at TIMESTAMPTZ
);
