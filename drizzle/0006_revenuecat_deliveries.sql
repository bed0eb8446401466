-- Records a batch of RevenueCat deliveries and carries out their purchase credits, in one statement
-- (see src/modules/purchases/webhook-deliveries.ts). The purchases policy has already decided, in the
-- service, what each event means; this claims each event in revenuecat_events, holds back a purchase
-- whose refund came first, credits the rest through ledger_apply (the ledger's one write statement)
-- and records every outcome. Refunds and reversals take the service's own transaction instead.
--
-- Each delivery (a JSON object in `deliveries`, answered by its position, `ord`): the event's columns (event_id, type, app_user_id,
-- environment, store, product_id, transaction_id, raw_body), action ('record' with outcome, detail
-- and user_id; or 'credit' with user_id, tokens, store_ref, description, metadata).
CREATE FUNCTION revenuecat_record(deliveries jsonb, max_balance integer)
RETURNS TABLE (ord integer, outcome text, detail text, user_id text, ledger_entry_id bigint, tokens integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  d record;
  prior record;
  c record;
  credits jsonb := '[]'::jsonb;
  waiting jsonb := '[]'::jsonb;
  w jsonb;
  done_outcome text;
  done_detail text;
  done_user text;
BEGIN
  -- All work on one store transaction is serialised (its purchase, refund and reversal may arrive at
  -- once); the locks are taken first, in a fixed order, so batches never deadlock on them.
  PERFORM pg_advisory_xact_lock(refs.h)
     FROM (SELECT DISTINCT hashtextextended(x.store_ref, 0) AS h
             FROM jsonb_to_recordset(deliveries) AS x(store_ref text, action text)
            WHERE x.action = 'credit' ORDER BY 1) AS refs;

  FOR d IN
    SELECT (x.n - 1)::integer AS ord, r.*
      FROM jsonb_array_elements(deliveries) WITH ORDINALITY AS x(elem, n)
      CROSS JOIN LATERAL jsonb_to_record(x.elem) AS r(
        event_id text, type text, app_user_id text, environment text, store text, product_id text,
        transaction_id text, raw_body text, action text, outcome text, detail text, user_id text,
        tokens integer, store_ref text, description text, metadata jsonb)
     ORDER BY x.n
  LOOP
    -- Claim the event. A redelivery of a processed event is a duplicate; of a failed one, it is
    -- processed again and records the delivery as it is now. A twin claimed meanwhile by another
    -- transaction makes the INSERT wait for it, and is then read as a redelivery.
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
      UPDATE revenuecat_events e SET deliveries = e.deliveries + 1,
        type = d.type, app_user_id = d.app_user_id, environment = d.environment, store = d.store,
        product_id = d.product_id, transaction_id = d.transaction_id, raw_body = d.raw_body,
        outcome = 'processing'
       WHERE e.event_id = d.event_id AND e.outcome = 'failed';
      IF NOT FOUND THEN
        UPDATE revenuecat_events e SET deliveries = e.deliveries + 1 WHERE e.event_id = d.event_id;
        RETURN QUERY SELECT d.ord, 'duplicate'::text, 'already processed: ' || prior.outcome,
          prior.user_id, prior.ledger_entry_id, NULL::integer;
        CONTINUE;
      END IF;
    END IF;

    IF d.action = 'record' THEN
      UPDATE revenuecat_events e SET outcome = d.outcome, detail = d.detail, user_id = d.user_id,
        processed_at = now() WHERE e.event_id = d.event_id;
      RETURN QUERY SELECT d.ord, d.outcome, d.detail, d.user_id, NULL::bigint, NULL::integer;
      CONTINUE;
    END IF;

    -- A refund that arrived first (and was not itself reversed) holds its purchase back; the detail
    -- starts with "held back by its refund" so that a later reversal can find and release it.
    IF EXISTS (SELECT 1 FROM revenuecat_events e WHERE e.transaction_id = d.transaction_id
                 AND (d.store IS NULL OR e.store = d.store) AND e.type = 'CANCELLATION' AND e.outcome = 'unmatched')
       AND NOT EXISTS (SELECT 1 FROM revenuecat_events e WHERE e.transaction_id = d.transaction_id
                 AND (d.store IS NULL OR e.store = d.store) AND e.type = 'REFUND_REVERSED' AND e.outcome = 'unmatched')
    THEN
      UPDATE revenuecat_events e SET outcome = 'ignored', user_id = d.user_id, processed_at = now(),
        detail = 'held back by its refund: transaction ' || d.store_ref || ' was refunded before its purchase arrived'
       WHERE e.event_id = d.event_id
      RETURNING e.outcome, e.detail INTO prior;
      RETURN QUERY SELECT d.ord, prior.outcome, prior.detail, d.user_id, NULL::bigint, NULL::integer;
      CONTINUE;
    END IF;

    credits := credits || jsonb_build_object('ord', jsonb_array_length(credits), 'user_id', d.user_id,
      'delta', d.tokens, 'mode', 'exact', 'kind', 'PURCHASE', 'description', d.description,
      'metadata', d.metadata, 'external_ref', d.store_ref);
    waiting := waiting || jsonb_build_object('ord', d.ord, 'event_id', d.event_id, 'user_id', d.user_id,
      'tokens', d.tokens, 'store_ref', d.store_ref, 'product_id', d.product_id);
  END LOOP;

  IF jsonb_array_length(credits) = 0 THEN
    RETURN;
  END IF;
  FOR c IN SELECT * FROM ledger_apply(credits, max_balance) LOOP
    w := waiting -> c.ord;
    IF c.status = 'applied' THEN
      done_outcome := 'credited';
      done_detail := (w->>'tokens') || ' tokens for ' || (w->>'product_id');
      done_user := w->>'user_id';
    ELSIF c.status = 'duplicate' THEN
      done_outcome := 'duplicate';
      done_detail := 'transaction ' || (w->>'store_ref') || ' already credited';
      done_user := c.user_id;
    ELSE
      done_outcome := 'failed';
      done_detail := CASE WHEN c.status = 'limit' THEN 'the balance would exceed its limit' ELSE 'not credited: ' || c.status END;
      done_user := w->>'user_id';
    END IF;
    -- Record what the credit came to, in the same transaction.
    UPDATE revenuecat_events e SET outcome = done_outcome, detail = done_detail, user_id = done_user,
           ledger_entry_id = c.id, processed_at = now()
     WHERE e.event_id = w->>'event_id';
    RETURN QUERY SELECT (w->>'ord')::integer, done_outcome, done_detail, done_user, c.id,
      CASE WHEN c.status = 'applied' THEN (w->>'tokens')::integer END;
  END LOOP;
END;
$$;
