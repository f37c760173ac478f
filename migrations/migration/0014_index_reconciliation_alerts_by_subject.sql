-- A rule's alerts for a subject, newest first: is this break raised already?
CREATE INDEX reconciliation_alerts_by_subject ON reconciliation_alerts (rule, subject, raised_at);
