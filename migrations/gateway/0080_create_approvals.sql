-- Four-eyes proposals for operator actions other than route changes (ADR 0012): one
-- operator proposes (`proposed_by`), another approves or rejects (`decided_by`); only an
-- approval makes the gateway call the owner (SagaAdmin, PaymentsReview). `kind` says what
-- is proposed, `target` on what (a saga's or a payment's id); `parameters` holds the
-- kind's validated request payload (SQL never looks inside it). `outcome` is the owner's
-- answer to the approved call: `done`, or its stable refusal code.
CREATE TABLE approvals (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('saga_force_compensate', 'saga_mark_resolved',
        'payment_screening_release', 'payment_screening_refuse')),
    target TEXT NOT NULL,
    parameters JSONB NOT NULL,
    reason TEXT NOT NULL,
    proposed_by TEXT NOT NULL,
    proposed_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by TEXT,
    decided_at TIMESTAMPTZ,
    decision_reason TEXT,
    outcome TEXT
);
