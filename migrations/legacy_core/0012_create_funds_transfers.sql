-- Funds transfers; the record is the answer as stored (JSON list of [name, mv, sv, value]),
-- so `S` answers exactly what `I` did.
CREATE TABLE funds_transfers (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    journal INT8 NOT NULL
);
