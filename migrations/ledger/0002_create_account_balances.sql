-- Balance rows: one per account, or several (shards) for an account that receives most
-- postings, so that writers to different shards never wait for each other.
CREATE TABLE account_balances (
    account_id UUID NOT NULL,
    shard INT8 NOT NULL,
    debits_posted NUMERIC(28, 6) NOT NULL DEFAULT 0,
    credits_posted NUMERIC(28, 6) NOT NULL DEFAULT 0,
    debits_pending NUMERIC(28, 6) NOT NULL DEFAULT 0,
    credits_pending NUMERIC(28, 6) NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, shard)
);
