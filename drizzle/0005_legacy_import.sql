CREATE TABLE "legacy_attribute_clears" (
	"customer_id" text PRIMARY KEY NOT NULL,
	"attribute" text NOT NULL,
	"cleared_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "token_transactions" DROP CONSTRAINT "token_transactions_kind";--> statement-breakpoint
ALTER TABLE "token_transactions" ADD CONSTRAINT "token_transactions_kind" CHECK ("token_transactions"."kind" IN ('SPEND', 'GRANT', 'PURCHASE', 'REFUND', 'REFUND_REVERSAL', 'LEGACY_IMPORT'));