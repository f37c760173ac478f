-- Replaced by 0105, which adds `migration_resume`.
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_listed;
