-- A negative limit amount is now a minimum balance (deposits' savings products), so the
-- CHECK (limit_amount >= 0) of 0001 goes. An unnamed column CHECK is named
-- `accounts_limit_amount_check` by PostgreSQL and `check_limit_amount` by CockroachDB: this
-- file drops the first, the next file the second, and each is a no-op where the other
-- name applies. The application validates limit amounts (currency minor units).
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_limit_amount_check;
