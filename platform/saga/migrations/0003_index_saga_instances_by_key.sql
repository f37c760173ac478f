-- Operators find sagas by type and business key (a payment id, an account id), newest first.
CREATE INDEX saga_instances_by_key ON saga_instances (saga_type, business_key, created_at);
