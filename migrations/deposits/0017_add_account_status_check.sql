-- The statuses of a deposit account, `closing` included (ADR 0010).
ALTER TABLE accounts ADD CONSTRAINT accounts_status_known
    CHECK (status IN ('active', 'dormant', 'frozen', 'closing', 'closed'));
