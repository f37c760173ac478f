-- What the first attempt of a request chose, pinned before it reaches the ledger, so a
-- retry chooses the same (ADR 0010): today the product version of an OpenAccount request.
CREATE TABLE request_pins (
    request_id UUID PRIMARY KEY,
    product_code TEXT NOT NULL,
    product_version INT8 NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
