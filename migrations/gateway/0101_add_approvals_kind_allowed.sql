-- The kinds of 0084 and `migration_start`: the start of a migration of a product's legacy
-- accounts (the migration component's StartMigration), `target` the product code and
-- `parameters` the migration's id and fraction.
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_allowed CHECK (kind IN (
    'saga_force_compensate', 'saga_mark_resolved', 'payment_screening_release',
    'payment_screening_refuse', 'product_define', 'migration_start'));
