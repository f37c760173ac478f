-- The day the account was opened on the legacy core (from the plan's export), for the move
-- that a migration's feeder starts later: the modern account opens with the same day.
ALTER TABLE account_moves ADD COLUMN opened_on TEXT NOT NULL DEFAULT '';
