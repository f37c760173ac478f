-- A reconciliation break as an alert (ADR 0013): raised open by the run that found it, then
-- acknowledged, and closed as resolved (with the correcting entry) or accepted (with a
-- note). A break still open is not raised again: later runs that find it name themselves in
-- `last_run_id`. A difference once accepted is not raised again while it stays the same.
CREATE TABLE reconciliation_alerts (
    id UUID PRIMARY KEY,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved', 'accepted')),
    run_id UUID NOT NULL,
    last_run_id UUID NOT NULL,
    expected TEXT NOT NULL,
    actual TEXT NOT NULL,
    raised_at TIMESTAMPTZ NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    correcting_entry TEXT NOT NULL DEFAULT ''
);
