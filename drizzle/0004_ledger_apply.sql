-- The ledger's one write statement: applies a batch of balance changes in arrival order and answers,
-- per request, what became of it. The ledger service calls it for one change inside a caller's
-- transaction, and its group commit calls it for every change that arrived while the previous batch
-- was being written (see src/modules/ledger/ledger.writer.ts).
--
-- Each request (a JSON object in `requests`): ord, user_id, delta (signed), mode ('exact', or
-- 'what_is_left' for a debit that takes at most the balance), kind, description, metadata,
-- idempotency_key, request_hash, external_ref, and optionally rate_key/rate_points/rate_window_ms
-- (a fixed-window counter in rate_limits, checked first). Outcomes: applied, replay (the
-- idempotency key was used: the earlier entry and its request hash), duplicate (the external
-- reference was used: the earlier entry), insufficient, limit (the balance would pass max_balance),
-- rate_limited (with retry_after_ms). A refusal fails alone; its neighbours are applied.
CREATE FUNCTION ledger_apply(requests jsonb, max_balance integer)
RETURNS TABLE (
  ord integer, status text, id bigint, user_id text, amount integer, balance_after integer,
  balance_version integer, kind text, description text, metadata jsonb, external_ref text,
  idempotency_key text, request_hash text, created_at timestamptz, available integer,
  retry_after_ms integer
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
  e token_transactions%ROWTYPE;
  take integer;
  new_balance integer;
  new_version integer;
  changed_at timestamptz;
  used_points integer;
  window_end timestamptz;
  change text;
  changes text := '';
BEGIN
  -- Every balance the batch credits exists, and every balance it touches is locked, in user order,
  -- before anything changes: concurrent batches wait for each other instead of deadlocking.
  INSERT INTO token_balances AS b (user_id, balance, version, updated_at)
    SELECT DISTINCT x.user_id, 0, 0, now()
      FROM jsonb_to_recordset(requests) AS x(user_id text, delta integer)
     WHERE x.delta > 0
     ORDER BY 1
  ON CONFLICT (user_id) DO NOTHING;
  PERFORM 1 FROM token_balances b
    WHERE b.user_id IN (SELECT x.user_id FROM jsonb_to_recordset(requests) AS x(user_id text))
    ORDER BY b.user_id
    FOR UPDATE;

  FOR r IN
    SELECT * FROM jsonb_to_recordset(requests) AS x(
      ord integer, user_id text, delta integer, mode text, kind text, description text,
      metadata jsonb, idempotency_key text, request_hash text, external_ref text,
      rate_key text, rate_points integer, rate_window_ms integer)
    ORDER BY x.ord
  LOOP
    IF r.rate_key IS NOT NULL THEN
      INSERT INTO rate_limits AS l (key, points, expire)
        VALUES (r.rate_key, 1, now() + r.rate_window_ms * interval '1 millisecond')
      ON CONFLICT (key) DO UPDATE SET
        points = CASE WHEN l.expire IS NULL OR l.expire <= now() THEN 1 ELSE l.points + 1 END,
        expire = CASE WHEN l.expire IS NULL OR l.expire <= now() THEN EXCLUDED.expire ELSE l.expire END
      RETURNING l.points, l.expire INTO used_points, window_end;
      IF used_points > r.rate_points THEN
        RETURN QUERY SELECT r.ord, 'rate_limited'::text, NULL::bigint, r.user_id, NULL::integer,
          NULL::integer, NULL::integer, r.kind, NULL::text, NULL::jsonb, NULL::text, NULL::text,
          NULL::text, NULL::timestamptz,
          (SELECT b.balance FROM token_balances b WHERE b.user_id = r.user_id),
          greatest(1, ceil(extract(epoch FROM window_end - now()) * 1000))::integer;
        CONTINUE;
      END IF;
    END IF;

    e := NULL;
    IF r.idempotency_key IS NOT NULL THEN
      SELECT * INTO e FROM token_transactions t
       WHERE t.user_id = r.user_id AND t.kind = r.kind AND t.idempotency_key = r.idempotency_key;
    END IF;
    IF e.id IS NULL AND r.external_ref IS NOT NULL THEN
      SELECT * INTO e FROM token_transactions t WHERE t.kind = r.kind AND t.external_ref = r.external_ref;
    END IF;
    IF e.id IS NOT NULL THEN
      RETURN QUERY SELECT r.ord,
        CASE WHEN r.idempotency_key IS NOT NULL AND e.idempotency_key = r.idempotency_key
             THEN 'replay' ELSE 'duplicate' END,
        e.id, e.user_id, e.amount, e.balance_after, e.balance_version, e.kind, e.description,
        e.metadata, e.external_ref, e.idempotency_key, e.request_hash, e.created_at,
        NULL::integer, NULL::integer;
      CONTINUE;
    END IF;

    take := r.delta;
    IF r.mode = 'what_is_left' THEN
      SELECT -least(b.balance, -r.delta) INTO take FROM token_balances b WHERE b.user_id = r.user_id;
      take := coalesce(take, 0);
    END IF;
    UPDATE token_balances b
       SET balance = (b.balance::bigint + take)::integer, version = b.version + 1, updated_at = now()
     WHERE b.user_id = r.user_id AND b.balance::bigint + take BETWEEN 0 AND max_balance
    RETURNING b.balance, b.version, b.updated_at INTO new_balance, new_version, changed_at;
    IF NOT FOUND THEN
      RETURN QUERY SELECT r.ord, CASE WHEN take < 0 THEN 'insufficient' ELSE 'limit' END,
        NULL::bigint, r.user_id, NULL::integer, NULL::integer, NULL::integer, r.kind, NULL::text,
        NULL::jsonb, NULL::text, NULL::text, NULL::text, NULL::timestamptz,
        coalesce((SELECT b.balance FROM token_balances b WHERE b.user_id = r.user_id), 0), NULL::integer;
      CONTINUE;
    END IF;

    INSERT INTO token_transactions AS t
      (user_id, amount, balance_after, balance_version, kind, description, metadata,
       idempotency_key, request_hash, external_ref, created_at)
    VALUES (r.user_id, take, new_balance, new_version, r.kind, r.description,
      CASE WHEN r.mode = 'what_is_left'
           THEN coalesce(r.metadata, '{}'::jsonb) || jsonb_build_object('recovered', -take, 'shortfall', take - r.delta)
           ELSE r.metadata END,
      r.idempotency_key, r.request_hash, r.external_ref, changed_at)
    RETURNING * INTO e;

    -- One NOTIFY carries the batch's changes (each NOTIFYing commit takes PostgreSQL's global notify
    -- lock); a payload must stay under 8000 bytes, so a large batch sends several.
    change := json_build_object('userId', e.user_id, 'balance', e.balance_after, 'delta', e.amount,
      'version', e.balance_version, 'entryId', e.id, 'at', e.created_at)::text;
    IF length(changes) + length(change) > 7000 THEN
      PERFORM pg_notify('token_balance_changed', '[' || changes || ']');
      changes := '';
    END IF;
    changes := CASE WHEN changes = '' THEN change ELSE changes || ',' || change END;

    RETURN QUERY SELECT r.ord, 'applied'::text, e.id, e.user_id, e.amount, e.balance_after,
      e.balance_version, e.kind, e.description, e.metadata, e.external_ref, e.idempotency_key,
      e.request_hash, e.created_at, NULL::integer, NULL::integer;
  END LOOP;

  IF changes <> '' THEN
    PERFORM pg_notify('token_balance_changed', '[' || changes || ']');
  END IF;
END;
$$;
