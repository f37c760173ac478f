CREATE UNIQUE INDEX entries_by_chain ON journal_entries (chain_partition, chain_sequence);
