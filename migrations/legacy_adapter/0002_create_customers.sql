-- Canonical customer ids and the core's customer numbers.
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    customer_no TEXT NOT NULL UNIQUE
);
