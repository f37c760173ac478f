-- The demo saga's own books: accounts with a balance in minor units. The demo component
-- exists to exercise the saga and outbox libraries (their tests, the crash tests and
-- `corebank bench saga`) on real rows; no money of a bank lives here.
CREATE TABLE demo_accounts (
    id TEXT PRIMARY KEY,
    balance INT8 NOT NULL
);
