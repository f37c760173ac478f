CREATE INDEX limit_reservations_by_account_day ON limit_reservations (account_id, day);
