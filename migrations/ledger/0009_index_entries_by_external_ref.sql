-- Only entries that carry an external reference are indexed by it.
CREATE INDEX entries_by_external_ref ON journal_entries (external_ref, recorded_at) WHERE external_ref <> '';
