-- The kinds of 0103 and `migration_resume`: starting a paused or stopped migration's moves
-- again (the migration component's ResumeMigration), `target` the migration's id.
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_with_resume CHECK (kind IN (
    'saga_force_compensate', 'saga_mark_resolved', 'payment_screening_release',
    'payment_screening_refuse', 'product_define', 'migration_start', 'migration_rollback',
    'migration_resume'));
