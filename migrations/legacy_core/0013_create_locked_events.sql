-- Holds (AC.LOCKED.EVENTS). status is what was done to the lock; EXPIRED is computed at
-- read time from to_date. created_journal and ended_journal let ACCT.EXPORT answer which
-- locks were live at a journal number.
CREATE TABLE locked_events (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    amount NUMERIC(28, 2) NOT NULL,
    from_date DATE NOT NULL,
    to_date DATE,
    description TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('LIVE', 'REVERSED', 'CAPTURED')),
    created_journal INT8 NOT NULL,
    ended_journal INT8
);
