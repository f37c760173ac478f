CREATE INDEX entries_by_external_ref ON journal_entries (external_ref, recorded_at);
