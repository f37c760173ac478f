-- Which request reserved how much of which day's limit: a retried request reserves once,
-- and a refused one gives back exactly what it took.
CREATE TABLE transfer_reservations (
    request_id UUID PRIMARY KEY,
    account_id UUID NOT NULL,
    day DATE NOT NULL,
    amount NUMERIC(28, 6) NOT NULL
);
