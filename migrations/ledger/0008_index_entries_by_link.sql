-- An entry is reversed at most once: at most one reversal links to it.
CREATE UNIQUE INDEX entries_one_reversal ON journal_entries (linked_entry_id) WHERE kind = 'reversal';
