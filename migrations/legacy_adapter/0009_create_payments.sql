-- Outbound payments booked on the core (FUNDS.TRANSFER type OT): the canonical payment
-- stored whole as its protobuf encoding, by id and by the core's transfer id.
CREATE TABLE payments (
    payment_id UUID PRIMARY KEY,
    ft_id TEXT NOT NULL UNIQUE,
    payment BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
