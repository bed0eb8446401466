-- revenuecat_record: the purchase path's one statement, and its current source (a migration copies
-- it whole; test/ledger/ledger-apply-source.test.ts fails when the newest migration differs). It is
-- the only code that claims a RevenueCat event, holds a purchase back and credits it, whichever way
-- the delivery comes: batched by the webhook's group commit (webhook-deliveries.ts), or inside a
-- caller's transaction when a refund or reversal claims its event, `webhooks:reprocess` applies a
-- kept event again, or a reversal releases the purchase its refund held back. The purchases policy
-- (purchase.policy.ts) has already decided what each event means.
--
-- Each delivery (a JSON object in `deliveries`, answered by its position, `ord`): the event's columns
-- (event_id, type, app_user_id, environment, store, product_id, transaction_id, raw_body); `via`:
--   deliver    (the default) a delivery as it arrives: claim the event first. A redelivery of a
--              processed event is a duplicate; of a failed one, it is processed again
--   reprocess  the event was claimed by `webhooks:reprocess` (claimForReprocess in webhook-inbox.ts)
--   release    a purchase its refund held back, released by the refund's reversal: credited now
-- and `action`:
--   claim      claim only, answered 'processing': the caller refunds or reverses in its transaction
--   record     record `outcome`, `detail` and `user_id` as they are (ignored, unmapped, failed)
--   credit     credit `tokens` to `user_id` once per store transaction (`store_ref`), through
--              ledger_apply, with `description` and `metadata`; unless a refund of the same store
--              transaction came first and was not itself reversed: then the outcome is 'held'.
--              Its lot's lot_ref is store_ref; a subscription's credit gives the lot's terms
--              (lot_source, lot_chain, lot_product, lot_starts_at, lot_expires_at, lot_rollover),
--              a pack's gives none (a lot that never expires).
--              `lot_supersede` asks for an upgrade's supersede: it is passed on to ledger_apply only
--              when the chain's last credited purchase for the user was of another product and ends
--              before this one (an early renewal of the same product, or an older period of the old
--              product processed late, supersedes nothing). A credited lot's chain is recorded in
--              revenuecat_events.chain_ref for that look-up.
-- Outcomes: the recorded outcome and its detail, the user, the ledger entry; for a credit, `tokens`
-- when credited and `credit_status`, ledger_apply's status (applied, duplicate, limit).
CREATE OR REPLACE FUNCTION revenuecat_lock_key(store_ref text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtextextended(store_ref, 0) $$;

CREATE OR REPLACE FUNCTION revenuecat_record(deliveries jsonb, max_balance integer)
RETURNS TABLE (ord integer, outcome text, detail text, user_id text, ledger_entry_id bigint, tokens integer,
  credit_status text)
LANGUAGE plpgsql AS $$
-- OUT columns share names with revenuecat_events' columns: bare names mean the table's (see ledger_apply).
#variable_conflict use_column
DECLARE
  d record;
  prior record;
  credit record;
  credits jsonb := '[]'::jsonb;
  waiting jsonb := '[]'::jsonb;
  w jsonb;
  done_outcome text;
  done_detail text;
  done_user text;
  supersede boolean;
BEGIN
  -- All work on one store transaction is serialised (its purchase, refund and reversal may arrive at
  -- once; webhook-inbox.ts takes the same lock for a refund or reversal); the locks are taken first,
  -- in a fixed order, so batches never deadlock on them.
  PERFORM pg_advisory_xact_lock(refs.k)
     FROM (SELECT DISTINCT revenuecat_lock_key(x.store_ref) AS k
             FROM jsonb_to_recordset(deliveries) AS x(store_ref text, action text)
            WHERE x.action = 'credit' ORDER BY 1) AS refs;

  FOR d IN
    SELECT (x.n - 1)::integer AS ord, r.*
      FROM jsonb_array_elements(deliveries) WITH ORDINALITY AS x(elem, n)
      CROSS JOIN LATERAL jsonb_to_record(x.elem) AS r(
        event_id text, type text, app_user_id text, environment text, store text, product_id text,
        transaction_id text, raw_body text, via text, action text, outcome text, detail text,
        user_id text, tokens integer, store_ref text, description text, metadata jsonb,
        lot_source text, lot_chain text, lot_product text, lot_starts_at text, lot_expires_at text,
        lot_rollover jsonb, lot_supersede boolean)
     ORDER BY x.n
  LOOP
    IF coalesce(d.via, 'deliver') = 'deliver' THEN
      -- Claim the event. A twin claimed meanwhile by another transaction makes the INSERT wait for
      -- it, and is then read as a redelivery.
      SELECT e.outcome, e.user_id, e.ledger_entry_id INTO prior
        FROM revenuecat_events e WHERE e.event_id = d.event_id FOR UPDATE;
      IF NOT FOUND THEN
        INSERT INTO revenuecat_events (event_id, type, app_user_id, environment, store, product_id,
                                       transaction_id, raw_body, outcome)
        VALUES (d.event_id, d.type, d.app_user_id, d.environment, d.store, d.product_id,
                d.transaction_id, d.raw_body, 'processing')
        ON CONFLICT (event_id) DO NOTHING;
        IF NOT FOUND THEN
          SELECT e.outcome, e.user_id, e.ledger_entry_id INTO prior
            FROM revenuecat_events e WHERE e.event_id = d.event_id FOR UPDATE;
        END IF;
      END IF;
      IF prior.outcome IS NOT NULL THEN
        -- A retry of a failed attempt records the delivery as it is now.
        UPDATE revenuecat_events e SET deliveries = e.deliveries + 1,
          type = d.type, app_user_id = d.app_user_id, environment = d.environment, store = d.store,
          product_id = d.product_id, transaction_id = d.transaction_id, raw_body = d.raw_body,
          outcome = 'processing'
         WHERE e.event_id = d.event_id AND e.outcome = 'failed';
        IF NOT FOUND THEN
          UPDATE revenuecat_events e SET deliveries = e.deliveries + 1 WHERE e.event_id = d.event_id;
          RETURN QUERY SELECT d.ord, 'duplicate'::text, 'already processed: ' || prior.outcome,
            prior.user_id, prior.ledger_entry_id, NULL::integer, NULL::text;
          CONTINUE;
        END IF;
      END IF;
    END IF;

    IF d.action = 'claim' THEN
      RETURN QUERY SELECT d.ord, 'processing'::text, NULL::text, NULL::text, NULL::bigint, NULL::integer,
        NULL::text;
      CONTINUE;
    END IF;

    IF d.action = 'record' THEN
      UPDATE revenuecat_events e SET outcome = d.outcome, detail = d.detail, user_id = d.user_id,
        processed_at = now() WHERE e.event_id = d.event_id;
      RETURN QUERY SELECT d.ord, d.outcome, d.detail, d.user_id, NULL::bigint, NULL::integer, NULL::text;
      CONTINUE;
    END IF;

    -- A refund that arrived first (recorded unmatched) and was not itself reversed holds its purchase
    -- back, as 'held', until a reversal releases it (via 'release').
    IF d.via IS DISTINCT FROM 'release'
       AND EXISTS (SELECT 1 FROM revenuecat_events e WHERE e.transaction_id = d.transaction_id
                 AND (d.store IS NULL OR e.store = d.store) AND e.type = 'CANCELLATION' AND e.outcome = 'unmatched')
       AND NOT EXISTS (SELECT 1 FROM revenuecat_events e WHERE e.transaction_id = d.transaction_id
                 AND (d.store IS NULL OR e.store = d.store) AND e.type = 'REFUND_REVERSED' AND e.outcome = 'unmatched')
    THEN
      done_detail := 'transaction ' || d.store_ref || ' was refunded before its purchase arrived';
      UPDATE revenuecat_events e SET outcome = 'held', detail = done_detail, user_id = d.user_id,
             processed_at = now()
       WHERE e.event_id = d.event_id;
      RETURN QUERY SELECT d.ord, 'held'::text, done_detail, d.user_id, NULL::bigint, NULL::integer, NULL::text;
      CONTINUE;
    END IF;

    -- A pack's lot (no lot_source) never expires; its lot_ref lets a refund find it.
    supersede := d.lot_source IS NOT NULL AND coalesce(d.lot_supersede, false) AND coalesce((
      SELECT e.product_id IS DISTINCT FROM d.product_id
             AND coalesce((e.raw_body::jsonb #>> '{event,expiration_at_ms}')::numeric
                          < extract(epoch FROM d.lot_expires_at::timestamptz) * 1000, true)
        FROM revenuecat_events e
       WHERE e.user_id = d.user_id AND e.chain_ref = d.lot_chain AND e.outcome = 'credited'
         AND e.event_id <> d.event_id
       ORDER BY e.processed_at DESC, e.event_id DESC LIMIT 1), false);
    credits := credits || jsonb_build_object('ord', jsonb_array_length(credits), 'user_id', d.user_id,
      'delta', d.tokens, 'mode', 'exact', 'kind', 'PURCHASE', 'description', d.description,
      'metadata', d.metadata, 'external_ref', d.store_ref,
      'lot_source', d.lot_source, 'lot_ref', d.store_ref, 'lot_chain', d.lot_chain,
      'lot_product', d.lot_product, 'lot_starts_at', d.lot_starts_at, 'lot_expires_at', d.lot_expires_at,
      'lot_rollover', d.lot_rollover, 'lot_supersede', supersede);
    waiting := waiting || jsonb_build_object('ord', d.ord, 'event_id', d.event_id, 'user_id', d.user_id,
      'tokens', d.tokens, 'store_ref', d.store_ref, 'product_id', d.product_id, 'chain_ref', d.lot_chain);
  END LOOP;

  IF jsonb_array_length(credits) = 0 THEN
    RETURN;
  END IF;
  FOR credit IN SELECT * FROM ledger_apply(credits, max_balance) LOOP
    w := waiting -> credit.ord;
    IF credit.status = 'applied' THEN
      done_outcome := 'credited';
      done_detail := (w->>'tokens') || ' tokens for ' || (w->>'product_id');
      done_user := w->>'user_id';
    ELSIF credit.status = 'duplicate' THEN
      done_outcome := 'duplicate';
      done_detail := 'transaction ' || (w->>'store_ref') || ' already credited';
      done_user := credit.user_id;
    ELSE
      done_outcome := 'failed';
      done_detail := CASE WHEN credit.status = 'limit' THEN 'the balance would exceed its limit'
                          ELSE 'not credited: ' || credit.status END;
      done_user := w->>'user_id';
    END IF;
    -- Record what the credit came to, in the same transaction.
    UPDATE revenuecat_events e SET outcome = done_outcome, detail = done_detail, user_id = done_user,
           ledger_entry_id = credit.id, processed_at = now(),
           chain_ref = CASE WHEN done_outcome = 'credited' THEN w->>'chain_ref' END
     WHERE e.event_id = w->>'event_id';
    RETURN QUERY SELECT (w->>'ord')::integer, done_outcome, done_detail, done_user, credit.id,
      CASE WHEN credit.status = 'applied' THEN (w->>'tokens')::integer END, credit.status;
  END LOOP;
END;
$$;
