-- The journal starts at zero: nothing has been written yet.
INSERT INTO journal (id, last_number) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
