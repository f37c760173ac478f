-- What the purge reads: the oldest deliveries first.
CREATE INDEX rail_deliveries_by_received_at ON rail_deliveries (received_at);
