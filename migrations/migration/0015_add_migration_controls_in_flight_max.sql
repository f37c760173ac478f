-- The in-flight window of a migration: at most this many of its moves under way at once (a
-- smaller window shortens each move, and so each account's time answering 503, at the cost
-- of throughput).
ALTER TABLE migration_controls ADD COLUMN in_flight_max INT8 NOT NULL DEFAULT 64;
