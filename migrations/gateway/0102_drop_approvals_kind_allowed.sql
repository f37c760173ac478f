-- Moving an account back to the legacy core becomes a kind of proposal
-- (`migration_rollback`, issue 15): the CHECK of 0101 goes, and 0103 puts back one that
-- allows it.
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_allowed;
