-- A migration's moves by state, for its feeder: the planned ones in account order, and the
-- few under way, without reading the moved ones.
CREATE INDEX account_moves_by_state ON account_moves (migration_id, state, account_id);
