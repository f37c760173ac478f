-- The relay reads the outbox partition by partition, each aggregate's events in order.
CREATE INDEX outbox_by_partition ON outbox (partition, aggregatetype, aggregateid, aggregate_sequence);
