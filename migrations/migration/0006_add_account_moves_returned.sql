-- An account moved back to the legacy core (rollback): the balance the modern side handed
-- back; empty while it stays moved. Reconciliation counts what moved less what came back.
ALTER TABLE account_moves ADD COLUMN returned TEXT NOT NULL DEFAULT '';
