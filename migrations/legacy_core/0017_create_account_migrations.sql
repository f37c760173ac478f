-- AC.ACCOUNT.MIGRATION: what emptying an account moved to another core did, once per
-- account, so that the action repeated answers the same figures. released_locks is the
-- ids of the locks it ended, separated by spaces.
CREATE TABLE account_migrations (
    account TEXT PRIMARY KEY,
    moved_amount NUMERIC(28, 2) NOT NULL,
    released_locks TEXT NOT NULL,
    emptied_journal INT8 NOT NULL,
    emptied_on DATE NOT NULL
);
