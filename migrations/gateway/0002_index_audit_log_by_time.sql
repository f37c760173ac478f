CREATE INDEX audit_log_by_time ON audit_log (at);
