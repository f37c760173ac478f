-- The head of each hash chain: the last entry's sequence and hash per partition.
CREATE TABLE chain_heads (
    chain_partition INT8 PRIMARY KEY,
    chain_sequence INT8 NOT NULL,
    hash TEXT NOT NULL
);
