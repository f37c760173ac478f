-- See 0015: the same CHECK under the name CockroachDB gives it.
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS check_status;
