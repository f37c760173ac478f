-- Version 0: no rules, so the monolith (legacy) stays primary for everything until a
-- four-eyes proposal routes something.
INSERT INTO route_versions (version, based_on, kind, proposal_id, rolled_back_to, proposed_by,
    approved_by, reason, activated_at)
VALUES (0, NULL, 'initial', NULL, NULL, 'system', 'system',
    'no rules: the legacy core serves everything', now())
ON CONFLICT (version) DO NOTHING;
INSERT INTO route_active (id, version, activated_at) VALUES (1, 0, now())
ON CONFLICT (id) DO NOTHING;
