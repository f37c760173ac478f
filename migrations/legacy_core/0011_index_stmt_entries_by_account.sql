CREATE INDEX stmt_entries_by_account ON stmt_entries (account, id);
