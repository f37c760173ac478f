-- The approvers' queue: pending proposals, oldest first.
CREATE INDEX approvals_by_status ON approvals (status, proposed_at);
