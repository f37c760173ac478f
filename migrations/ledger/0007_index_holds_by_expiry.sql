CREATE INDEX holds_due ON holds (status, expires_at);
