CREATE INDEX postings_by_account ON postings (account_id, recorded_at, entry_id, leg);
