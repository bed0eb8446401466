-- Two entry kinds for operators: ADJUSTMENT (adjustTokens, a signed correction with a reason) and
-- TRANSFER (transferTokens: one debit and one credit, committed together under one idempotency key).
ALTER TABLE "token_transactions" DROP CONSTRAINT "token_transactions_kind";--> statement-breakpoint
ALTER TABLE "token_transactions" ADD CONSTRAINT "token_transactions_kind" CHECK ("token_transactions"."kind" IN ('SPEND', 'GRANT', 'PURCHASE', 'REFUND', 'REFUND_REVERSAL', 'LEGACY_IMPORT', 'ADJUSTMENT', 'TRANSFER'));