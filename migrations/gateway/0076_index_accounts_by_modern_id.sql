CREATE INDEX accounts_by_modern_id ON accounts (modern_id);
