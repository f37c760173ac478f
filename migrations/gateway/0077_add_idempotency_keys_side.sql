-- The side a request was first sent to: a retry under the same key (after a timeout, or a
-- takeover after a crash) goes to the same side even if the route table changed meanwhile,
-- so the side's own dedupe by request id holds.
ALTER TABLE idempotency_keys ADD COLUMN side TEXT CHECK (side IN ('legacy', 'modern'));
