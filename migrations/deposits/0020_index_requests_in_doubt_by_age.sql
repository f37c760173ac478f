-- The scheduled job reads the oldest requests in doubt first.
CREATE INDEX requests_in_doubt_by_age ON requests_in_doubt (created_at);
