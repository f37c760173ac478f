-- Starting an account migration becomes a kind of proposal (`migration_start`, issue 15):
-- the named CHECK of 0084 goes, and 0101 puts back one that allows it.
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_known;
