-- Screening counts a debtor's recent payments (velocity).
CREATE INDEX payments_by_debtor ON payments (debtor_account_id, created_at);
