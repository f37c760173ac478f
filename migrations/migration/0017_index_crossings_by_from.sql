-- An account's transfers as their debtor, for a move that waits for them to settle.
CREATE INDEX crossings_by_from ON crossings (from_reference);
