-- The event log head starts at sequence 0; the first event gets sequence 1.
INSERT INTO "event_log_head" ("id", "sequence") VALUES (1, 0) ON CONFLICT DO NOTHING;
