-- Inputs whose answer was lost: until `until`, the core may still carry out the first
-- attempt late (it was slow, not dead), so a refusal of a later attempt is not final.
CREATE TABLE in_doubt (
    legacy_key TEXT PRIMARY KEY,
    until TIMESTAMPTZ NOT NULL
);
