-- BLAKE3 cannot be computed in SQL, so rows written before this migration keep a null chain digest until
-- the server's start (or the next appended event) fills the chain in sequence order.
ALTER TABLE "event_log_head" ADD COLUMN "chain_digest_hex" text;--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "chain_digest_hex" text;
