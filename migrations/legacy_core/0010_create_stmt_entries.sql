-- Statement entries: every posting is a set of entries summing to zero. Entry ids grow with
-- the journal (both are handed out inside the serialised write transaction).
CREATE TABLE stmt_entries (
    id INT8 PRIMARY KEY,
    account TEXT NOT NULL,
    amount NUMERIC(28, 2) NOT NULL,
    journal INT8 NOT NULL,
    trans_reference TEXT NOT NULL,
    booking_date DATE NOT NULL,
    value_date DATE NOT NULL,
    narrative TEXT NOT NULL
);
