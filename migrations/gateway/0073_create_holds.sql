-- Holds placed through the gateway: the id channels use (the primary side's at placement)
-- and the hold's id on each side that holds it (the shadow side's own copy included).
CREATE TABLE holds (
    hold_id UUID PRIMARY KEY,
    account_id UUID NOT NULL,
    legacy_id UUID,
    modern_id UUID
);
