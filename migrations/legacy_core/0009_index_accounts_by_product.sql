CREATE INDEX accounts_by_product ON accounts (product_code, id);
