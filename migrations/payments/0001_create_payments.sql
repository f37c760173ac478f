-- Payments, outbound and inbound. The outbound saga's own state is in saga_instances (same
-- id); this table holds what the payment is about.
CREATE TABLE payments (
    id UUID PRIMARY KEY,
    request_id UUID NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    status TEXT NOT NULL,
    debtor_account_id TEXT NOT NULL,
    debtor_name TEXT NOT NULL DEFAULT '',
    creditor_name TEXT NOT NULL,
    creditor_account TEXT NOT NULL,
    creditor_agent_bic TEXT NOT NULL,
    amount NUMERIC(28, 6) NOT NULL,
    currency TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    uetr UUID NOT NULL,
    remittance_information TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    content JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
