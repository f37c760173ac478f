-- The poller of every replica looks for scheduled proposals that are due.
CREATE INDEX route_proposals_by_status ON route_proposals (status, activate_at);
