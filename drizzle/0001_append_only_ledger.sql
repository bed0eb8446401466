-- Ledger entries are append-only: corrections are new entries, never edits. The database itself
-- refuses UPDATE, DELETE and TRUNCATE so that no code path, tool or operator typo can rewrite history.
CREATE FUNCTION token_transactions_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'token_transactions is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER token_transactions_no_update_delete
  BEFORE UPDATE OR DELETE ON token_transactions
  FOR EACH ROW EXECUTE FUNCTION token_transactions_refuse_change();
--> statement-breakpoint
CREATE TRIGGER token_transactions_no_truncate
  BEFORE TRUNCATE ON token_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION token_transactions_refuse_change();
