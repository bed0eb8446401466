-- ledger_apply: the ledger's one write statement, and the only SQL that writes token_balances and
-- token_transactions (test/architecture.test.ts holds it to that). This file is the current source;
-- a migration copies it whole (CREATE OR REPLACE), and test/ledger/ledger-apply-source.test.ts fails
-- when the newest migration that defines the function differs from it. To change the function: edit
-- this file, copy the CREATE statement into a new drizzle/00NN_<change>.sql with a header saying what
-- changed, add that migration to drizzle/meta/_journal.json, and run test/ledger/.
--
-- Contract. It applies a batch of balance changes in arrival order and answers, per request, what
-- became of it. The ledger service calls it for one change inside a caller's transaction
-- (ledger.statements.ts), and its group commit calls it for every change that arrived while the
-- previous batch was being written (ledger.writer.ts); revenuecat_record calls it for the purchases
-- of a batch of deliveries (src/modules/purchases/sql/revenuecat_record.sql).
--
-- Each request (a JSON object in `requests`): ord, user_id, delta (signed), mode ('exact', or
-- 'what_is_left' for a debit that takes at most the balance), kind, description, metadata,
-- idempotency_key, request_hash, external_ref, and optionally rate_key/rate_points/rate_window_ms
-- (a fixed-window counter in rate_limits, checked first; every request of the batch counts, in
-- arrival order). Outcomes, one row per request:
--   applied       the entry written (a 'what_is_left' debit records recovered/shortfall in metadata)
--   replay        the idempotency key was used: the earlier entry and its request hash, and the
--                 balance now in `available`
--   duplicate     the external reference was used: the earlier entry
--   insufficient  the balance would go below 0; the balance in `available`
--   limit         the balance would pass max_balance; the balance in `available`
--   rate_limited  past the counter's points; the balance in `available`, and retry_after_ms
-- A refusal fails alone; its neighbours are applied. Every balance the batch touches is locked, in
-- user order, before anything changes, so concurrent batches wait for each other instead of
-- deadlocking. One NOTIFY (channel token_balance_changed, a JSON array of {userId, balance, delta,
-- version, entryId, at}; see ledger.events.ts) carries the batch's changes and is delivered at commit.
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
