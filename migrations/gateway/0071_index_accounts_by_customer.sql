CREATE INDEX accounts_by_customer ON accounts (customer_id);
