-- A product's definition becomes a kind of proposal (`product_define`, issue 15), so the
-- CHECK of 0080 goes and 0084 puts back a named one that allows it. An unnamed column CHECK
-- is named `approvals_kind_check` by PostgreSQL and `check_kind` by CockroachDB: this file
-- drops the first, the next file the second, and each is a no-op where the other name
-- applies.
ALTER TABLE approvals DROP CONSTRAINT IF EXISTS approvals_kind_check;
