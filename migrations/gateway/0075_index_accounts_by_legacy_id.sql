CREATE INDEX accounts_by_legacy_id ON accounts (legacy_id);
