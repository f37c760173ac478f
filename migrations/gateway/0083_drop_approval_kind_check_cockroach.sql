-- See 0082: the same CHECK under the name CockroachDB gives it.
ALTER TABLE approvals DROP CONSTRAINT IF EXISTS check_kind;
