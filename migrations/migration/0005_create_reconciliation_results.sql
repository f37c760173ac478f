-- Each rule's result in a run, with its evidence: the figures read, from where and when, so
-- that a break can be shown to an auditor as it was found.
CREATE TABLE reconciliation_results (
    run_id UUID NOT NULL,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    ok BOOL NOT NULL,
    expected TEXT NOT NULL,
    actual TEXT NOT NULL,
    evidence JSONB NOT NULL,
    PRIMARY KEY (run_id, rule, subject)
);
