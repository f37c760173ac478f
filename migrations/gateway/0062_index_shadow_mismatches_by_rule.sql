-- The admin listing filtered by product and operation, newest first.
CREATE INDEX shadow_mismatches_by_rule ON shadow_mismatches (product, operation, at, id);
