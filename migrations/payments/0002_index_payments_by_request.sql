-- Idempotency of InitiatePayment: one payment per request id.
CREATE UNIQUE INDEX payments_by_request ON payments (request_id);
