-- Id counters (customer and account serials, statement entries, lock and transaction
-- numbers), each the last value handed out. Written only inside a journal transaction.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    last_value INT8 NOT NULL
);
