-- What the executors claim: running or compensating sagas, by the time they are due.
CREATE INDEX saga_instances_due ON saga_instances (next_attempt_at) WHERE status IN ('running', 'compensating');
