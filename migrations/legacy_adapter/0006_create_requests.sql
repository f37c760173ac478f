-- Answers to canonical requests by request_id: the same id with the same content gets the
-- first answer again (the protobuf encoding of it); with other content it is refused.
CREATE TABLE requests (
    request_id UUID PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    answer BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
