-- Daily transfer limits the core does not know: each transfer reserves its amount for its
-- account and day before it is sent, and gives it back when the core refuses it.
CREATE TABLE limit_reservations (
    request_id UUID PRIMARY KEY,
    account_id UUID NOT NULL,
    day DATE NOT NULL,
    amount NUMERIC(28, 6) NOT NULL
);
