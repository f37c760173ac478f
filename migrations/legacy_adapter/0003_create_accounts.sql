-- Canonical account ids (UUIDs derived from the core's account numbers) and the numbers.
CREATE TABLE accounts (
    account_id UUID PRIMARY KEY,
    account_no TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    product_code TEXT NOT NULL,
    product_version INT8 NOT NULL,
    currency TEXT NOT NULL
);
