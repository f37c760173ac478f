-- Closing becomes a status of its own (`closing`: no new movements while the balance is
-- swept out), so the CHECK of 0002 goes and 0017 puts back a named one that allows it. An
-- unnamed column CHECK is named `accounts_status_check` by PostgreSQL and `check_status` by
-- CockroachDB: this file drops the first, the next file the second, and each is a no-op
-- where the other name applies.
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_status_check;
