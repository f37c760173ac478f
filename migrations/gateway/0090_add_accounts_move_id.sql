-- The account migration moving this account (its move's id), while it moves: channel
-- requests that would change the account are answered 503 `account_moving` until the move
-- ends. NULL: not moving.
ALTER TABLE accounts ADD COLUMN move_id TEXT;
