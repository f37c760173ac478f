-- The core's one journal counter (a monolith's global lock, on purpose): every write
-- transaction increments it first, so writes are serialised and the journal number orders
-- everything committed. One row, id 1.
CREATE TABLE journal (
    id INT8 PRIMARY KEY CHECK (id = 1),
    last_number INT8 NOT NULL CHECK (last_number >= 0)
);
