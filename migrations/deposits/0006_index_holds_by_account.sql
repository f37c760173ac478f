CREATE INDEX holds_by_account ON holds (account_id, status);
