-- An account's moves across migrations: at most one may be under way at a time.
CREATE INDEX account_moves_by_account ON account_moves (account_id, state);
