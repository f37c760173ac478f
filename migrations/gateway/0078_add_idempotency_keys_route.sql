-- The route decision of a completed request (side, version, reason), so a replay says which
-- side served it and which route version decided, as the first answer did.
ALTER TABLE idempotency_keys ADD COLUMN route JSONB;
