CREATE TABLE "revenuecat_events" (
	"event_id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"app_user_id" text,
	"user_id" text,
	"environment" text,
	"store" text,
	"product_id" text,
	"transaction_id" text,
	"raw_body" text NOT NULL,
	"outcome" text NOT NULL,
	"detail" text,
	"ledger_entry_id" bigint,
	"deliveries" integer DEFAULT 1 NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"processed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "token_balances" (
	"user_id" text PRIMARY KEY NOT NULL,
	"balance" integer DEFAULT 0 NOT NULL,
	"version" integer DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "token_balances_balance_range" CHECK ("token_balances"."balance" >= 0 AND "token_balances"."balance" <= 2000000000),
	CONSTRAINT "token_balances_version_nonnegative" CHECK ("token_balances"."version" >= 0),
	CONSTRAINT "token_balances_user_id_length" CHECK (char_length("token_balances"."user_id") BETWEEN 1 AND 255)
);
--> statement-breakpoint
CREATE TABLE "token_transactions" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "token_transactions_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"user_id" text NOT NULL,
	"amount" integer NOT NULL,
	"balance_after" integer NOT NULL,
	"balance_version" integer NOT NULL,
	"kind" text NOT NULL,
	"description" text,
	"metadata" jsonb,
	"idempotency_key" text,
	"request_hash" text,
	"external_ref" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "token_transactions_balance_after_range" CHECK ("token_transactions"."balance_after" BETWEEN 0 AND 2000000000),
	CONSTRAINT "token_transactions_kind" CHECK ("token_transactions"."kind" IN ('SPEND', 'GRANT', 'PURCHASE', 'REFUND', 'REFUND_REVERSAL'))
);
--> statement-breakpoint
CREATE INDEX "revenuecat_events_outcome" ON "revenuecat_events" USING btree ("outcome");--> statement-breakpoint
CREATE INDEX "revenuecat_events_transaction" ON "revenuecat_events" USING btree ("store","transaction_id");--> statement-breakpoint
CREATE INDEX "token_transactions_user_newest" ON "token_transactions" USING btree ("user_id","id" DESC NULLS LAST);--> statement-breakpoint
CREATE UNIQUE INDEX "token_transactions_user_idempotency_key" ON "token_transactions" USING btree ("user_id","idempotency_key") WHERE "token_transactions"."idempotency_key" IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "token_transactions_kind_external_ref" ON "token_transactions" USING btree ("kind","external_ref") WHERE "token_transactions"."external_ref" IS NOT NULL;