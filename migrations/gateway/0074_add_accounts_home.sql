-- The side that keeps an account's real books (where it was opened). Real requests go there;
-- a copy on the other side only receives shadow traffic until an account migration moves
-- the account and its home. Rows written before this column: the side with the id that is
-- the channel's id.
ALTER TABLE accounts ADD COLUMN home TEXT CHECK (home IN ('legacy', 'modern'));
