-- A migration limited to a list of customers: their ids as a JSON array of strings (empty
-- text: every customer's accounts of the product).
ALTER TABLE migrations ADD COLUMN customers TEXT NOT NULL DEFAULT '';
