-- Transfers out of an account per day, against its product's daily transfer limit. A
-- transfer reserves its amount here before the ledger moves the money (and gives it back
-- if the ledger refuses), so concurrent transfers cannot pass the limit together.
CREATE TABLE daily_transfers (
    account_id UUID NOT NULL,
    day DATE NOT NULL,
    total NUMERIC(28, 6) NOT NULL,
    PRIMARY KEY (account_id, day)
);
