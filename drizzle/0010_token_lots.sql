-- Lots (issue 18): one row per grant of tokens with what is left of it and when it expires, and an
-- append-only record of which entry moved how much of which lot. A balance already held before this
-- migration becomes one non-expiring 'legacy' lot of that balance (no entry is written, so the
-- ledger's sum and the lots' sum agree from the first moment). `held` on token_balances makes room
-- for holds (issue 19); it is 0 until they exist. EXPIRE is a new kind of entry.
CREATE TABLE "token_lot_moves" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "token_lot_moves_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"entry_id" bigint,
	"lot_id" bigint NOT NULL,
	"amount" integer NOT NULL,
	"reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "token_lots" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "token_lots_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"user_id" text NOT NULL,
	"source" text NOT NULL,
	"source_ref" text,
	"chain_ref" text,
	"product_id" text,
	"granted" integer NOT NULL,
	"remaining" integer NOT NULL,
	"expired" integer DEFAULT 0 NOT NULL,
	"starts_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"rollover" jsonb,
	"entry_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "token_lots_amounts" CHECK ("token_lots"."granted" >= 0 AND "token_lots"."remaining" >= 0 AND "token_lots"."expired" >= 0),
	CONSTRAINT "token_lots_source" CHECK ("token_lots"."source" IN ('pack', 'period', 'trial', 'grant', 'rollover', 'restore', 'legacy'))
);
--> statement-breakpoint
ALTER TABLE "token_transactions" DROP CONSTRAINT "token_transactions_kind";--> statement-breakpoint
ALTER TABLE "token_balances" ADD COLUMN "held" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "token_lot_moves_entry" ON "token_lot_moves" USING btree ("entry_id");--> statement-breakpoint
CREATE INDEX "token_lot_moves_lot" ON "token_lot_moves" USING btree ("lot_id");--> statement-breakpoint
CREATE UNIQUE INDEX "token_lots_source_ref" ON "token_lots" USING btree ("source_ref") WHERE "token_lots"."source_ref" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "token_lots_draw" ON "token_lots" USING btree ("user_id","expires_at" ASC NULLS LAST,"id") WHERE "token_lots"."remaining" > 0;--> statement-breakpoint
CREATE INDEX "token_lots_due" ON "token_lots" USING btree ("expires_at") WHERE "token_lots"."remaining" > 0 AND "token_lots"."expires_at" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "token_lots_chain" ON "token_lots" USING btree ("chain_ref") WHERE "token_lots"."chain_ref" IS NOT NULL;--> statement-breakpoint
ALTER TABLE "token_balances" ADD CONSTRAINT "token_balances_held_range" CHECK ("token_balances"."held" >= 0 AND "token_balances"."held" <= "token_balances"."balance");--> statement-breakpoint
ALTER TABLE "token_transactions" ADD CONSTRAINT "token_transactions_kind" CHECK ("token_transactions"."kind" IN ('SPEND', 'GRANT', 'PURCHASE', 'REFUND', 'REFUND_REVERSAL', 'LEGACY_IMPORT', 'ADJUSTMENT', 'TRANSFER', 'EXPIRE'));
--> statement-breakpoint
CREATE FUNCTION token_lot_moves_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'token_lot_moves is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER token_lot_moves_no_update_delete
  BEFORE UPDATE OR DELETE ON token_lot_moves
  FOR EACH ROW EXECUTE FUNCTION token_lot_moves_refuse_change();
--> statement-breakpoint
CREATE TRIGGER token_lot_moves_no_truncate
  BEFORE TRUNCATE ON token_lot_moves
  FOR EACH STATEMENT EXECUTE FUNCTION token_lot_moves_refuse_change();
--> statement-breakpoint
INSERT INTO token_lots (user_id, source, granted, remaining, starts_at)
  SELECT b.user_id, 'legacy', b.balance, b.balance, b.updated_at
    FROM token_balances b
   WHERE b.balance > 0
   ORDER BY b.user_id;
