-- Customers; the id is the customer number (six-digit serial and a MOD 11 check digit).
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    mnemonic TEXT NOT NULL UNIQUE,
    short_name TEXT NOT NULL,
    name_1 TEXT NOT NULL,
    sector TEXT NOT NULL,
    created_journal INT8 NOT NULL
);
