-- Accounts, customer and internal (customer IS NULL). The id is the account number. The
-- working balance is kept in the same transaction as the statement entries that move it.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    customer TEXT,
    category INT8 NOT NULL,
    currency TEXT NOT NULL,
    title TEXT NOT NULL,
    alt_acct_id TEXT UNIQUE,
    product_code TEXT NOT NULL,
    opening_date DATE NOT NULL,
    posting_restrict TEXT NOT NULL CHECK (posting_restrict IN ('', '3')),
    closure_date DATE,
    working_balance NUMERIC(28, 2) NOT NULL,
    opened_journal INT8 NOT NULL,
    closed_journal INT8
);
