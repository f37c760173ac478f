-- Every transition of an alert, kept: the state it reached, who moved it there, when, and
-- their note and correcting entry. Each state is reached at most once.
CREATE TABLE reconciliation_alert_events (
    alert_id UUID NOT NULL,
    state TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    correcting_entry TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, state)
);
