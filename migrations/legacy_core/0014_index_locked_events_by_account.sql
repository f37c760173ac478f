CREATE INDEX locked_events_by_account ON locked_events (account, id);
