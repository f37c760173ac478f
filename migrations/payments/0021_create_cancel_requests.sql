-- Cancellations by request id (CancelPaymentRequest.request_id): a retry with the same id
-- answers the first outcome; the same id with another payment or reason is refused.
-- `state` is 'pending' while the saga is being told, 'cancelled' once it was.
CREATE TABLE cancel_requests (
    request_id UUID PRIMARY KEY,
    payment_id UUID NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'cancelled')),
    created_at TIMESTAMPTZ NOT NULL
);
