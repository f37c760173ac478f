-- The admin listing without filters (newest first) and the retention sweep.
CREATE INDEX shadow_mismatches_by_time ON shadow_mismatches (at, id);
