-- The saga moving an account back to the legacy core, once one was started.
ALTER TABLE account_moves ADD COLUMN return_saga_id UUID;
