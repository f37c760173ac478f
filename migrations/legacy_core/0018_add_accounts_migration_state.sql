-- An account's part in a move to another core (AC.ACCOUNT.MIGRATION): MIGRATING while it
-- moves, MIGRATED once emptied. The core shows it as POSTING.RESTRICT 90 and 91 and refuses
-- postings (ACCOUNT MIGRATING, ACCOUNT MIGRATED); the bank's own posting_restrict is kept
-- apart, so that a move never overwrites it.
ALTER TABLE accounts ADD COLUMN migration_state TEXT NOT NULL DEFAULT ''
    CHECK (migration_state IN ('', 'MIGRATING', 'MIGRATED'));
