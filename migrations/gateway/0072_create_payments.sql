-- Payments started through the gateway: which side runs each, for which account.
CREATE TABLE payments (
    payment_id UUID PRIMARY KEY,
    side TEXT NOT NULL CHECK (side IN ('legacy', 'modern')),
    account_id UUID NOT NULL,
    customer_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
