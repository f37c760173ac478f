-- pacs.002 status reports received from the rail, by the UETR of the payment they answer.
CREATE TABLE status_reports (
    uetr UUID PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    received_at TIMESTAMPTZ NOT NULL
);
