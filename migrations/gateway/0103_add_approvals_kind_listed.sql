-- The kinds of 0101 and `migration_rollback`: moving one account of a migration back to the
-- legacy core (the migration component's ReturnAccount), `target` the account's id and
-- `parameters` the migration's id.
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_listed CHECK (kind IN (
    'saga_force_compensate', 'saga_mark_resolved', 'payment_screening_release',
    'payment_screening_refuse', 'product_define', 'migration_start', 'migration_rollback'));
