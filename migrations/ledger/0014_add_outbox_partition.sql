-- The relay partition of each outbox row: a stable hash of (aggregatetype, aggregateid)
-- modulo the partition count, computed in Rust (corebank_outbox::partition_of) by the writer,
-- so that relays can lease partitions and every event of an aggregate goes through the same
-- relay. -1 marks a row written without one (by a binary older than this migration); the
-- relay assigns those before it relays.
ALTER TABLE outbox ADD COLUMN partition INT8 NOT NULL DEFAULT -1;
