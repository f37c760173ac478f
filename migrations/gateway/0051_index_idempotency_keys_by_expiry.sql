CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
