-- The purchase path in one place, and the money function from its source file.
-- * ledger_apply is copied from src/modules/ledger/sql/ledger_apply.sql (the same rules as 0007;
--   the contract is at the top of that file): a replay row now carries the balance in `available`,
--   so an idempotency conflict is answered without reading the balance again.
-- * revenuecat_record (src/modules/purchases/sql/revenuecat_record.sql) is now the only code that
--   claims an event, holds a purchase back and credits it: also for a refund's or reversal's claim,
--   for webhooks:reprocess and for a purchase released by its refund's reversal (`via`). It answers
--   ledger_apply's status of each credit (credit_status), and a held purchase is recorded as 'held'
--   (it was 'ignored' with a detail starting "held back by its refund"); kept events are renamed.
-- * revenuecat_lock_key is the one statement of a store transaction's lock key.
DROP FUNCTION revenuecat_record(jsonb, integer);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION ledger_apply(requests jsonb, max_balance integer)
RETURNS TABLE (
  ord integer, status text, id bigint, user_id text, amount integer, balance_after integer,
  balance_version integer, kind text, description text, metadata jsonb, external_ref text,
  idempotency_key text, request_hash text, created_at timestamptz, available integer,
  retry_after_ms integer
)
LANGUAGE plpgsql AS $$
-- The OUT columns above share their names with table columns (user_id, kind, amount...). Inside the
-- body a bare name would be ambiguous; `use_column` makes it mean the table's column in a query, so
-- every OUT column is set only by assignment (`status := ...`) and every query names its table alias.
#variable_conflict use_column
DECLARE
  req record;
  entry token_transactions%ROWTYPE;
  take integer;
  new_balance integer;
  new_version integer;
  changed_at timestamptz;
  counters jsonb;
  counter jsonb;
  change text;
  changes text := '';
BEGIN
  -- Every balance the batch credits exists, and every balance it touches is locked, in user order,
  -- before anything changes: concurrent batches wait for each other instead of deadlocking. The
  -- lock goes through the primary key (`= ANY (ARRAY(...))`): a join would be planned as a
  -- sequential scan of every balance.
  INSERT INTO token_balances AS b (user_id, balance, version, updated_at)
    SELECT DISTINCT x.user_id, 0, 0, now()
      FROM jsonb_to_recordset(requests) AS x(user_id text, delta integer)
     WHERE x.delta > 0
     ORDER BY 1
  ON CONFLICT (user_id) DO NOTHING;
  PERFORM 1 FROM token_balances b
    WHERE b.user_id = ANY (ARRAY(SELECT x.user_id FROM jsonb_to_recordset(requests) AS x(user_id text)))
    ORDER BY b.user_id
    FOR UPDATE;

  -- Fixed-window counters, one upsert for the batch: each key counts all of its requests at once,
  -- and remembers the count it had before them and when its window ends. A request's place among
  -- the batch's requests for its key (rate_place, in arrival order) tells whether it passes.
  WITH asked AS (
    SELECT x.rate_key, count(*)::integer AS n, max(x.rate_window_ms) AS window_ms
      FROM jsonb_to_recordset(requests) AS x(rate_key text, rate_window_ms integer)
     WHERE x.rate_key IS NOT NULL
     GROUP BY x.rate_key
  ), counted AS (
    INSERT INTO rate_limits AS l (key, points, expire)
      SELECT a.rate_key, a.n, now() + a.window_ms * interval '1 millisecond' FROM asked a ORDER BY 1
    ON CONFLICT (key) DO UPDATE SET
      points = CASE WHEN l.expire IS NULL OR l.expire <= now() THEN EXCLUDED.points ELSE l.points + EXCLUDED.points END,
      expire = CASE WHEN l.expire IS NULL OR l.expire <= now() THEN EXCLUDED.expire ELSE l.expire END
    RETURNING l.key, l.points, l.expire
  )
  SELECT jsonb_object_agg(c.key, jsonb_build_object('before', c.points - a.n, 'ends', c.expire))
    INTO counters
    FROM counted c JOIN asked a ON a.rate_key = c.key;

  FOR req IN
    SELECT x.*, count(*) OVER (PARTITION BY x.rate_key ORDER BY x.ord)::integer AS rate_place
      FROM jsonb_to_recordset(requests) AS x(
        ord integer, user_id text, delta integer, mode text, kind text, description text,
        metadata jsonb, idempotency_key text, request_hash text, external_ref text,
        rate_key text, rate_points integer, rate_window_ms integer)
     ORDER BY x.ord
  LOOP
    ord := req.ord; status := NULL; id := NULL; user_id := req.user_id; amount := NULL;
    balance_after := NULL; balance_version := NULL; kind := req.kind; description := NULL;
    metadata := NULL; external_ref := NULL; idempotency_key := NULL; request_hash := NULL;
    created_at := NULL; available := NULL; retry_after_ms := NULL;

    IF req.rate_key IS NOT NULL THEN
      counter := counters -> req.rate_key;
      IF (counter ->> 'before')::integer + req.rate_place > req.rate_points THEN
        status := 'rate_limited';
        available := coalesce((SELECT b.balance FROM token_balances b WHERE b.user_id = req.user_id), 0);
        retry_after_ms := greatest(1, ceil(extract(epoch FROM (counter ->> 'ends')::timestamptz - now()) * 1000))::integer;
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;

    -- An earlier entry with this idempotency key (a replay) or this external reference (a duplicate).
    entry := NULL;
    IF req.idempotency_key IS NOT NULL THEN
      SELECT * INTO entry FROM token_transactions t
       WHERE t.user_id = req.user_id AND t.kind = req.kind AND t.idempotency_key = req.idempotency_key;
    END IF;
    IF entry.id IS NULL AND req.external_ref IS NOT NULL THEN
      SELECT * INTO entry FROM token_transactions t WHERE t.kind = req.kind AND t.external_ref = req.external_ref;
    END IF;
    IF entry.id IS NOT NULL THEN
      status := CASE WHEN req.idempotency_key IS NOT NULL AND entry.idempotency_key = req.idempotency_key
                     THEN 'replay' ELSE 'duplicate' END;
      IF status = 'replay' THEN
        available := coalesce((SELECT b.balance FROM token_balances b WHERE b.user_id = req.user_id), 0);
      END IF;
    ELSE
      take := req.delta;
      IF req.mode = 'what_is_left' THEN
        SELECT -least(b.balance, -req.delta) INTO take FROM token_balances b WHERE b.user_id = req.user_id;
        take := coalesce(take, 0);
      END IF;
      -- One conditional UPDATE moves the balance; the CHECKs on token_balances back its bounds.
      UPDATE token_balances b
         SET balance = (b.balance::bigint + take)::integer, version = b.version + 1, updated_at = now()
       WHERE b.user_id = req.user_id AND b.balance::bigint + take BETWEEN 0 AND max_balance
      RETURNING b.balance, b.version, b.updated_at INTO new_balance, new_version, changed_at;
      IF NOT FOUND THEN
        status := CASE WHEN take < 0 THEN 'insufficient' ELSE 'limit' END;
        available := coalesce((SELECT b.balance FROM token_balances b WHERE b.user_id = req.user_id), 0);
        RETURN NEXT;
        CONTINUE;
      END IF;

      INSERT INTO token_transactions AS t
        (user_id, amount, balance_after, balance_version, kind, description, metadata,
         idempotency_key, request_hash, external_ref, created_at)
      VALUES (req.user_id, take, new_balance, new_version, req.kind, req.description,
        CASE WHEN req.mode = 'what_is_left'
             THEN coalesce(req.metadata, '{}'::jsonb) || jsonb_build_object('recovered', -take, 'shortfall', take - req.delta)
             ELSE req.metadata END,
        req.idempotency_key, req.request_hash, req.external_ref, changed_at)
      RETURNING * INTO entry;

      -- One NOTIFY carries the batch's changes (each NOTIFYing commit takes PostgreSQL's global
      -- notify lock); a payload must stay under 8000 bytes, so a large batch sends several.
      change := json_build_object('userId', entry.user_id, 'balance', entry.balance_after,
        'delta', entry.amount, 'version', entry.balance_version, 'entryId', entry.id,
        'at', entry.created_at)::text;
      IF length(changes) + length(change) > 7000 THEN
        PERFORM pg_notify('token_balance_changed', '[' || changes || ']');
        changes := '';
      END IF;
      changes := CASE WHEN changes = '' THEN change ELSE changes || ',' || change END;
      status := 'applied';
    END IF;

    -- applied, replay or duplicate: the row is the entry.
    id := entry.id; user_id := entry.user_id; amount := entry.amount; balance_after := entry.balance_after;
    balance_version := entry.balance_version; kind := entry.kind; description := entry.description;
    metadata := entry.metadata; external_ref := entry.external_ref;
    idempotency_key := entry.idempotency_key; request_hash := entry.request_hash;
    created_at := entry.created_at;
    RETURN NEXT;
  END LOOP;

  IF changes <> '' THEN
    PERFORM pg_notify('token_balance_changed', '[' || changes || ']');
  END IF;
END;
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION revenuecat_lock_key(store_ref text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtextextended(store_ref, 0) $$;
--> statement-breakpoint
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
        user_id text, tokens integer, store_ref text, description text, metadata jsonb)
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

    credits := credits || jsonb_build_object('ord', jsonb_array_length(credits), 'user_id', d.user_id,
      'delta', d.tokens, 'mode', 'exact', 'kind', 'PURCHASE', 'description', d.description,
      'metadata', d.metadata, 'external_ref', d.store_ref);
    waiting := waiting || jsonb_build_object('ord', d.ord, 'event_id', d.event_id, 'user_id', d.user_id,
      'tokens', d.tokens, 'store_ref', d.store_ref, 'product_id', d.product_id);
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
           ledger_entry_id = credit.id, processed_at = now()
     WHERE e.event_id = w->>'event_id';
    RETURN QUERY SELECT (w->>'ord')::integer, done_outcome, done_detail, done_user, credit.id,
      CASE WHEN credit.status = 'applied' THEN (w->>'tokens')::integer END, credit.status;
  END LOOP;
END;
$$;
--> statement-breakpoint
UPDATE revenuecat_events
   SET outcome = 'held', detail = substr(detail, length('held back by its refund: ') + 1)
 WHERE outcome = 'ignored' AND detail LIKE 'held back by its refund:%';
