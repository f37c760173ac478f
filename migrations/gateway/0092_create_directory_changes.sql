-- Every change to an account's home or move, numbered without gaps in commit order (each
-- writer takes MAX + 1 in its SERIALIZABLE transaction): each gateway replica polls the
-- numbers past the last it saw and drops those accounts from its cache, so a move's
-- freeze and its switch of home reach every replica within one poll.
CREATE TABLE directory_changes (
    seq INT8 PRIMARY KEY,
    account_id UUID NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
