CREATE INDEX "events_subject_id_idx" ON "events" USING btree ("subject_id","sequence");--> statement-breakpoint
CREATE INDEX "events_type_idx" ON "events" USING btree ("event_type" COLLATE "C","sequence");--> statement-breakpoint
CREATE INDEX "packages_manifest_cbor_idx" ON "packages" USING btree ("manifest_cbor_address") WHERE "packages"."manifest_cbor_address" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "packages_manifest_json_idx" ON "packages" USING btree ("manifest_json_address") WHERE "packages"."manifest_json_address" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "storage_locations_failed_idx" ON "storage_locations" USING btree ("content_address") WHERE "storage_locations"."status" <> 'ok';