CREATE TABLE "api_tokens" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"token_sha256_hex" text NOT NULL,
	"scopes" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_tokens_name_unique" UNIQUE("name"),
	CONSTRAINT "api_tokens_token_sha256_hex_unique" UNIQUE("token_sha256_hex")
);
--> statement-breakpoint
CREATE TABLE "blobs" (
	"content_address" text PRIMARY KEY NOT NULL,
	"size_bytes" bigint NOT NULL,
	"sha256_hex" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "event_log_head" (
	"id" smallint PRIMARY KEY NOT NULL,
	"sequence" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "events" (
	"sequence" bigint PRIMARY KEY NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"event_type" text NOT NULL,
	"subject_kind" text NOT NULL,
	"subject_id" text NOT NULL,
	"actor" text NOT NULL,
	"payload" "bytea" NOT NULL,
	"payload_digest_hex" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "files" (
	"id" uuid PRIMARY KEY NOT NULL,
	"package_id" uuid NOT NULL,
	"relative_path" text NOT NULL,
	"media_type" text NOT NULL,
	"size_bytes" bigint NOT NULL,
	"digest_algorithm" text DEFAULT 'blake3' NOT NULL,
	"digest_primary_hex" text NOT NULL,
	"digest_sha256_hex" text NOT NULL,
	"content_address" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "holds" (
	"id" uuid PRIMARY KEY NOT NULL,
	"package_id" uuid NOT NULL,
	"reason" text NOT NULL,
	"applied_by" text NOT NULL,
	"applied_at" timestamp with time zone DEFAULT now() NOT NULL,
	"released_by" text,
	"released_at" timestamp with time zone,
	"release_reason" text
);
--> statement-breakpoint
CREATE TABLE "metadata_schemas" (
	"slug" text PRIMARY KEY NOT NULL,
	"schema" jsonb NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "packages" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"producer" text NOT NULL,
	"subject" text NOT NULL,
	"retention_class" text NOT NULL,
	"metadata_schema" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"manifest_digest" text,
	"manifest_cbor_address" text,
	"manifest_json_address" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finalized_at" timestamp with time zone,
	"expires_at" timestamp with time zone,
	"deleted_at" timestamp with time zone,
	"last_event_sequence" bigint,
	CONSTRAINT "packages_status_check" CHECK ("packages"."status" in ('open', 'finalized', 'deleted'))
);
--> statement-breakpoint
CREATE TABLE "retention_classes" (
	"class_id" text PRIMARY KEY NOT NULL,
	"default_duration_seconds" bigint,
	"deletion_strategy" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id_sha256_hex" text PRIMARY KEY NOT NULL,
	"token_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "storage_locations" (
	"content_address" text NOT NULL,
	"backend_id" text NOT NULL,
	"object_key" text NOT NULL,
	"retrieval_tier" text NOT NULL,
	"status" text DEFAULT 'ok' NOT NULL,
	"verified_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "uploads" (
	"id" text PRIMARY KEY NOT NULL,
	"package_id" uuid NOT NULL,
	"relative_path" text NOT NULL,
	"media_type" text NOT NULL,
	"upload_length" bigint,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"completed_at" timestamp with time zone,
	"file_id" uuid,
	"terminated" boolean DEFAULT false NOT NULL,
	"hashed_offset" bigint DEFAULT 0 NOT NULL,
	"attempt" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
ALTER TABLE "files" ADD CONSTRAINT "files_package_id_packages_id_fk" FOREIGN KEY ("package_id") REFERENCES "public"."packages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "files" ADD CONSTRAINT "files_content_address_blobs_content_address_fk" FOREIGN KEY ("content_address") REFERENCES "public"."blobs"("content_address") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "holds" ADD CONSTRAINT "holds_package_id_packages_id_fk" FOREIGN KEY ("package_id") REFERENCES "public"."packages"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "packages" ADD CONSTRAINT "packages_retention_class_retention_classes_class_id_fk" FOREIGN KEY ("retention_class") REFERENCES "public"."retention_classes"("class_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "packages" ADD CONSTRAINT "packages_metadata_schema_metadata_schemas_slug_fk" FOREIGN KEY ("metadata_schema") REFERENCES "public"."metadata_schemas"("slug") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_token_id_api_tokens_id_fk" FOREIGN KEY ("token_id") REFERENCES "public"."api_tokens"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "storage_locations" ADD CONSTRAINT "storage_locations_content_address_blobs_content_address_fk" FOREIGN KEY ("content_address") REFERENCES "public"."blobs"("content_address") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "uploads" ADD CONSTRAINT "uploads_package_id_packages_id_fk" FOREIGN KEY ("package_id") REFERENCES "public"."packages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "events_subject_idx" ON "events" USING btree ("subject_kind","subject_id","sequence");--> statement-breakpoint
CREATE UNIQUE INDEX "files_package_path_idx" ON "files" USING btree ("package_id","relative_path");--> statement-breakpoint
CREATE INDEX "files_content_address_idx" ON "files" USING btree ("content_address");--> statement-breakpoint
CREATE INDEX "holds_package_idx" ON "holds" USING btree ("package_id");--> statement-breakpoint
CREATE INDEX "packages_created_idx" ON "packages" USING btree ("created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "packages_producer_idx" ON "packages" USING btree ("producer","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "packages_subject_idx" ON "packages" USING btree ("subject","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "packages_status_idx" ON "packages" USING btree ("status","expires_at");--> statement-breakpoint
CREATE INDEX "packages_metadata_idx" ON "packages" USING gin ("metadata" jsonb_path_ops);--> statement-breakpoint
CREATE UNIQUE INDEX "storage_locations_blob_backend_idx" ON "storage_locations" USING btree ("content_address","backend_id");--> statement-breakpoint
CREATE UNIQUE INDEX "uploads_open_path_idx" ON "uploads" USING btree ("package_id","relative_path") WHERE "uploads"."completed_at" is null and "uploads"."terminated" = false;