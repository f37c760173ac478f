-- An account's transfers as their creditor, for a move that waits for them to settle.
CREATE INDEX crossings_by_to ON crossings (to_reference);
