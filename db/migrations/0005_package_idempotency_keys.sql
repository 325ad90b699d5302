CREATE TABLE "package_idempotency_keys" (
	"created_by" text NOT NULL,
	"idempotency_key" text NOT NULL,
	"request_sha256_hex" text NOT NULL,
	"package_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "package_idempotency_keys_created_by_idempotency_key_pk" PRIMARY KEY("created_by","idempotency_key")
);
--> statement-breakpoint
ALTER TABLE "package_idempotency_keys" ADD CONSTRAINT "package_idempotency_keys_package_id_packages_id_fk" FOREIGN KEY ("package_id") REFERENCES "public"."packages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "package_idempotency_keys_package_idx" ON "package_idempotency_keys" USING btree ("package_id");