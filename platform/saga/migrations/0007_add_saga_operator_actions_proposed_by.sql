-- Four eyes (ADR 0012): force-compensate and mark-resolved are proposed by one operator and
-- carried out by another; both names stay in the saga's history. Empty for single-person
-- actions (retry, resume) and for actions recorded before this column existed.
ALTER TABLE saga_operator_actions ADD COLUMN proposed_by TEXT NOT NULL DEFAULT '';
