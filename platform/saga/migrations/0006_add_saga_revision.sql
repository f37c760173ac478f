-- Every write of a saga's state bumps its revision, and every executor write names the
-- revision it read: a step whose COMMIT outcome was unknown, then re-run from a stale read,
-- changes nothing (the generation alone cannot tell, since it stays the same).
ALTER TABLE saga_instances ADD COLUMN revision INT8 NOT NULL DEFAULT 0;
