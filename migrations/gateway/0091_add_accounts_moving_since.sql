-- When the move in `move_id` began (how long channels have waited on the account).
ALTER TABLE accounts ADD COLUMN moving_since TIMESTAMPTZ;
