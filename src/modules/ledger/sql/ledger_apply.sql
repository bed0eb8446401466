-- ledger_apply: the ledger's one write statement, and the only SQL that writes token_balances,
-- token_transactions, token_lots, token_lot_moves, token_holds and token_hold_pins
-- (test/architecture.test.ts holds it to that).
-- This file is the current source; a migration copies it whole (CREATE OR REPLACE), and
-- test/ledger/ledger-apply-source.test.ts fails when the newest migration that defines the function
-- differs from it. To change the function: edit this file, copy the CREATE statement into a new
-- drizzle/00NN_<change>.sql with a header saying what changed, add that migration to
-- drizzle/meta/_journal.json, and run test/ledger/.
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
-- arrival order), and `op` with its lot fields:
--   change (default)  a credit opens a lot: lot_source (else by kind: PURCHASE pack, LEGACY_IMPORT
--                     legacy, REFUND_REVERSAL restore, others grant), lot_ref (store ref, unique: a
--                     second credit for it is a duplicate), lot_chain, lot_product, lot_starts_at,
--                     lot_expires_at (null = never; already past = born expired: the entry and an
--                     EXPIRE of the same amount), lot_rollover ({"cap": N}), lot_supersede (the free
--                     remainder of the user's other open lots of lot_chain expires now, and they end).
--                     A debit draws the user's lots: soonest expiry first, then oldest, never last.
--   expire            nothing but the touch step below; the row's amount is what it expired.
--   refund            lot_ref, ratio (0 < r <= 1, default 1), delta (-tokens, for a purchase with no
--                     lot), external_ref: target = ceil(granted x ratio), from the lot first, its
--                     expired part counts as returned, the rest from the owner's other lots (FEFO),
--                     never below 0; metadata {target, fromLot, alreadyExpired, fromOthers,
--                     shortfall, recovered, lotId}. It hits the lot's owner, whoever user_id names.
--   reverse_refund    external_ref: gives back exactly what that REFUND took, into the lots it took
--                     from (a part whose lot has ended expires at once: an EXPIRE after the
--                     REFUND_REVERSAL); what no move accounts for opens a non-expiring restore lot.
--   reverse_spend     reverses_entry (a SPEND of user_id), kind ADJUSTMENT, external_ref (one reversal
--                     per spend): an admin gives the spend's tokens back into the lots it drew, like
--                     reverse_refund (metadata {reversesEntryId}); what no move accounts for (a hold's
--                     pinned tokens, a spend before lots) opens a non-expiring restore lot.
--   extend / cut      lot_ref, lot_expires_at: a later / earlier end (a lot move of 0, no entry); a
--                     cut to a past end expires the free remainder now (what of it is held stays).
--   reserve           delta (-tokens), idempotency_key + request_hash (one hold per user and key),
--                     hold_ttl_seconds, hold_limit (active holds per user), description, metadata:
--                     held rises, the balance and the lots stay. No entry.
--   capture           hold_id, delta (-tokens asked), overage ('REJECT' default, or 'CAP'): one SPEND
--                     entry (external_ref 'hold:<id>', metadata {holdId, held, captured, requested,
--                     shortfall}); it uses the hold's pins first (soonest-expiring first), the rest
--                     of its pins goes back to their lots (expiring at once where a lot has ended),
--                     and it draws the rest from the lots like a debit; above the hold, REJECT
--                     refuses (the hold stays active) and CAP takes min(extra, available) from free
--                     lots. Captured again: the earlier entry (`duplicate`).
--   release           hold_id: held falls; its pins go back (as above); no entry.
--   expire_hold       hold_id (the sweeper's): the hold ends by its TTL like a release.
-- Holds act on the hold's owner only (hold_id and user_id must match, else hold_not_found). A spend,
-- a refund and a new hold use only free tokens: balance - held. Held tokens stay in the lots: laid
-- end to end (soonest expiry first, then oldest, non-expiring last), a user's lots hold first the
-- held tokens (held - pinned of them) and then the free ones, so a debit draws past the held ones,
-- and a capture draws past those the user's other holds keep. Where a lot ends while some of its
-- tokens are held (by its time, a cut, an upgrade), those are pinned to active holds
-- (token_hold_pins, token_holds.pinned, token_balances.pinned) and outlive the lot until their hold
-- ends: a capture uses them, and the rest then expires.
-- Every batch first expires the due lots (expires_at <= its clock) of every user it touches, each
-- as one EXPIRE entry, carrying a lot's rollover (cap minus the chain's live rollover lots) into a
-- rollover lot that ends one period later. One clock per batch: the transaction's start, or in
-- tests the transaction-local setting ledger.clock. Then every active hold of those users whose
-- expires_at <= the clock expires (as an expire_hold placed before the batch's requests), so a
-- capture after a hold's end is refused even before any sweep. Outcomes, one row per request:
--   applied       the entry written (a 'what_is_left' debit records recovered/shortfall in metadata)
--   replay        the idempotency key was used: the earlier entry and its request hash, and the
--                 balance now in `available`
--   duplicate     the external reference (or the lot_ref of a credit) was used: the earlier entry
--   insufficient  the balance would go below 0; the balance in `available`
--   limit         the balance would pass max_balance; the balance in `available`
--   rate_limited  past the counter's points; the balance in `available`, and retry_after_ms
--   expired / lot_changed / unchanged / no_lot   (expire, extend, cut) the tokens expired in `amount`;
--                 no_lot also when a refund's lot or a reversal's refund belongs to another user
--                 than the one the batch resolved (a concurrent batch wrote it meanwhile): nothing
--                 is written, send it again
--   reserved, hold_replay (request_hash is the hold's), too_many_holds, released, hold_closed (a
--                 release or expiry of a hold already released or expired), hold_expired,
--                 hold_released, hold_already_captured, amount_exceeds_hold, hold_not_found,
--                 unchanged (an expire_hold before the hold's end), and a capture's `applied` or
--                 `duplicate` (with its SPEND entry): `hold_after` is the hold as the request left
--                 it (to_jsonb of its token_holds row); `insufficient` a reserve beyond what is free.
-- `available` is always what a spend may use now: balance - held.
-- A refusal fails alone; its neighbours are applied. Every balance the batch touches is locked, in
-- user order, before anything changes, so concurrent batches wait for each other instead of
-- deadlocking; lots are written only under their owner's balance lock. Every change to a lot has a
-- token_lot_moves row, so balance = sum of lots' remaining + pins of active holds = sum of entries,
-- and pinned (of a balance, of a hold) = the pins of its active holds.
-- One NOTIFY (channel token_balance_changed, a JSON array of {userId, balance, delta, version,
-- entryId, at, kind, held, holdId?}; see ledger.events.ts) carries the batch's changes, EXPIRE
-- entries included, delivered at commit. A hold change without an entry (kind HOLD, RELEASE,
-- HOLD_EXPIRED) has entryId null and delta 0, and also raises the balance's version, so entry
-- versions may skip where the live feed does not.
-- Plans: every statement here reaches its rows through a key (a user's, an id's), and the function
-- runs with enable_seqscan off. PL/pgSQL keeps a statement's plan for the session; one made while a
-- table was small (a new deployment, a table autovacuum has not analyzed yet) would otherwise go on
-- reading the whole table at every batch as it grows (test/ledger/holds.test.ts counts the reads).
-- It also runs with plan_cache_mode force_generic_plan: each statement is planned once per
-- connection, for any values. Left to choose, PostgreSQL planned the holds statement anew at most
-- batches (201 times in 200 batches of reserves, 125 in 200 of captures): a plan made for one batch's
-- arrays, often empty ones, looked cheaper than the generic plan (test/ledger/holds.test.ts reads
-- the plans).
CREATE OR REPLACE FUNCTION ledger_apply(requests jsonb, max_balance integer)
RETURNS TABLE (
  ord integer, status text, id bigint, user_id text, amount integer, balance_after integer,
  balance_version integer, kind text, description text, metadata jsonb, external_ref text,
  idempotency_key text, request_hash text, created_at timestamptz, available integer,
  retry_after_ms integer, hold_after jsonb
)
LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
-- The OUT columns above share their names with table columns (user_id, kind, amount...). Inside the
-- body a bare name would be ambiguous; `use_column` makes it mean the table's column in a query, so
-- every OUT column is set only by assignment (`status := ...`) and every query names its table alias.
#variable_conflict use_column
DECLARE
  req record;
  entry token_transactions%ROWTYPE;
  xe token_transactions%ROWTYPE;
  lot token_lots%ROWTYPE;
  refunded token_transactions%ROWTYPE;
  mv record;
  ids bigint[];
  op text;
  take integer;
  need integer;
  drawn integer;
  new_balance integer;
  new_version integer;
  new_held integer;
  changed_at timestamptz;
  counters jsonb;
  counter jsonb;
  notes text[] := '{}';
  changes text := '';
  -- One clock for the batch. Tests move it with set_config('ledger.clock', ..., true), which lasts
  -- only to the end of their transaction; unset (production), it is the transaction's start.
  clock timestamptz := CASE WHEN coalesce(current_setting('ledger.clock', true), '') = '' THEN now()
                            ELSE current_setting('ledger.clock', true)::timestamptz END;
  due_users text[];
  touched jsonb := '{}';
  to_expire bigint[];
  expire_why text[];
  i integer;
  n integer;
  carry integer;
  again boolean;
  target integer;
  from_lot integer;
  already integer;
  from_others integer;
  lot_meta jsonb;
  hold token_holds%ROWTYPE;
  free integer;
  used integer;
  to_use integer;
  at_limit boolean;
  fits boolean;
  swept jsonb := '{}';
  -- What waits for the write step: new entries (w_rows) and holds (h_rows), their ids already taken
  -- from their sequences; holds closed (c_rows, as they are now); the users of all that (w_user);
  -- and the draws from free lots (an entry's: its user, tokens, move reason, and where in the user's
  -- lots it starts: past the tokens held there).
  w_rows token_transactions[] := '{}';
  h_rows token_holds[] := '{}';
  c_rows token_holds[] := '{}';
  w_user text[] := '{}';
  d_entry bigint[] := '{}';
  d_user text[] := '{}';
  d_need integer[] := '{}';
  d_reason text[] := '{}';
  d_skip integer[] := '{}';
  live_held integer;
  -- Held tokens of lots that ended, waiting to be pinned to their user's holds (k_*), and what of
  -- each lot a request expires stays held (to_keep).
  k_user text[] := '{}';
  k_lot bigint[] := '{}';
  k_n integer[] := '{}';
  to_keep integer[];
  keep integer;
  r_entry bigint[] := '{}';
  r_lot bigint[] := '{}';
  r_n integer[] := '{}';
  r_reason text[] := '{}';
  r_user text[] := '{}';
  p_lot bigint[];
  p_back integer[];
  why text;
BEGIN
  -- A refund, an extension or a cut hits the owner of the lot it names (or, for a lot this batch
  -- opens, of the credit that opens it), whoever the request names (a TRANSFER of the subscription
  -- moves no tokens); a reversal hits the owner of the refund it names (or of this batch's refund).
  -- A lot or refund that turns out to be another user's in the loop below is answered no_lot.
  IF jsonb_path_exists(requests, '$[*] ? (@.op == "refund" || @.op == "reverse_refund" || @.op == "extend" || @.op == "cut")') THEN
    SELECT jsonb_agg(CASE WHEN o.owner IS NULL THEN r ELSE jsonb_set(r, '{user_id}', to_jsonb(o.owner)) END
                     ORDER BY (r ->> 'ord')::integer)
      INTO requests
      FROM jsonb_array_elements(requests) AS r
      LEFT JOIN LATERAL (
        SELECT coalesce(
          (SELECT l.user_id FROM token_lots l WHERE l.source_ref = r ->> 'lot_ref'),
          (SELECT c ->> 'user_id' FROM jsonb_array_elements(requests) AS c
            WHERE coalesce(c ->> 'op', 'change') = 'change' AND (c ->> 'delta')::integer > 0
              AND c ->> 'lot_ref' = r ->> 'lot_ref' AND (c ->> 'ord')::integer < (r ->> 'ord')::integer
            ORDER BY (c ->> 'ord')::integer LIMIT 1)) AS owner
         WHERE r ->> 'op' IN ('refund', 'extend', 'cut')
      ) AS o ON true;
    SELECT jsonb_agg(CASE WHEN o.owner IS NULL THEN r ELSE jsonb_set(r, '{user_id}', to_jsonb(o.owner)) END
                     ORDER BY (r ->> 'ord')::integer)
      INTO requests
      FROM jsonb_array_elements(requests) AS r
      LEFT JOIN LATERAL (
        SELECT coalesce(
          (SELECT t.user_id FROM token_transactions t WHERE t.kind = 'REFUND' AND t.external_ref = r ->> 'external_ref'),
          (SELECT c ->> 'user_id' FROM jsonb_array_elements(requests) AS c
            WHERE c ->> 'op' = 'refund' AND c ->> 'external_ref' = r ->> 'external_ref'
              AND (c ->> 'ord')::integer < (r ->> 'ord')::integer
            ORDER BY (c ->> 'ord')::integer LIMIT 1)) AS owner
         WHERE r ->> 'op' = 'reverse_refund'
      ) AS o ON true;
  END IF;

  -- Every balance the batch credits exists, and every balance it touches is locked, in user order,
  -- before anything changes: concurrent batches wait for each other instead of deadlocking. The
  -- lock goes through the primary key (`= ANY (ARRAY(...))`): a join would be planned as a
  -- sequential scan of every balance. Lots are only written under their owner's balance lock.
  INSERT INTO token_balances AS b (user_id, balance, version, updated_at)
    SELECT DISTINCT x.user_id, 0, 0, now()
      FROM jsonb_to_recordset(requests) AS x(user_id text, delta integer)
     WHERE x.delta > 0
     ORDER BY 1
  ON CONFLICT (user_id) DO NOTHING;
  due_users := ARRAY(SELECT DISTINCT x.user_id FROM jsonb_to_recordset(requests) AS x(user_id text));
  PERFORM 1 FROM token_balances b
    WHERE b.user_id = ANY (due_users)
    ORDER BY b.user_id
    FOR UPDATE;

  -- Expire on touch: every lot of the batch's users that is due (expires_at <= clock) expires now,
  -- in expiry order, each as one EXPIRE entry of its remainder; a lot with a rollover rule first
  -- carries what the cap allows into a rollover lot (the cap counts the chain's live rollover lots,
  -- read here). When no lot is due anywhere (between sweeps), the first entry of token_lots_due
  -- settles it without looking at the batch's users. A rollover lot that is due itself (a late batch) is expired by
  -- the next pass, so missed periods are caught up one by one.
  again := coalesce((SELECT min(l.expires_at) FROM token_lots l WHERE l.open AND l.expires_at IS NOT NULL) <= clock,
                    false);
  WHILE again LOOP
    again := false;
    FOR lot IN
      SELECT l.* FROM token_lots l
       WHERE l.user_id = ANY (due_users) AND l.open AND l.expires_at <= clock
       ORDER BY l.user_id, l.expires_at, l.id
    LOOP
      -- The lot is at the front of its user's lots laid end to end, so it holds the first of the
      -- user's held tokens that are in lots (held - pinned, less what this step kept already): those
      -- stay held and are pinned to the user's holds (at the top of the loop over requests); only the
      -- rest rolls over or expires.
      SELECT least(lot.remaining, b.held - b.pinned
                   - coalesce((SELECT sum(k.n) FROM unnest(k_user, k_n) AS k(u, n) WHERE k.u = lot.user_id), 0))
        INTO keep FROM token_balances b WHERE b.user_id = lot.user_id;
      IF keep > 0 THEN
        k_user := k_user || lot.user_id; k_lot := k_lot || lot.id; k_n := k_n || keep;
        lot.remaining := lot.remaining - keep;
      END IF;
      carry := 0;
      IF lot.rollover IS NOT NULL AND lot.chain_ref IS NOT NULL THEN
        carry := least(lot.remaining, greatest(0, (lot.rollover ->> 'cap')::integer - coalesce((
          SELECT sum(r.remaining) FROM token_lots r
           WHERE r.user_id = lot.user_id AND r.chain_ref = lot.chain_ref AND r.source = 'rollover'
             AND r.remaining > 0 AND (r.expires_at IS NULL OR r.expires_at > clock)), 0)));
      END IF;
      xe := NULL;
      IF lot.remaining > carry THEN
        UPDATE token_balances b
           SET balance = b.balance - (lot.remaining - carry), version = b.version + 1, updated_at = now()
         WHERE b.user_id = lot.user_id
        RETURNING b.balance, b.version, b.held, b.updated_at INTO new_balance, new_version, new_held, changed_at;
        INSERT INTO token_transactions AS t
          (user_id, amount, balance_after, balance_version, kind, description, metadata, created_at)
        VALUES (lot.user_id, -(lot.remaining - carry), new_balance, new_version, 'EXPIRE', 'Tokens expired unused',
          jsonb_build_object('reason', 'expired', 'lotId', lot.id, 'source', lot.source,
            'expiresAt', lot.expires_at, 'rolledOver', carry),
          changed_at)
        RETURNING * INTO xe;
        notes := notes || json_build_object('userId', xe.user_id, 'balance', xe.balance_after,
          'delta', xe.amount, 'version', xe.balance_version, 'entryId', xe.id, 'at', xe.created_at,
          'kind', xe.kind, 'held', new_held)::text;
        touched := jsonb_set(touched, ARRAY[lot.user_id],
          to_jsonb(coalesce((touched ->> lot.user_id)::integer, 0) + lot.remaining - carry));
      END IF;
      UPDATE token_lots l SET remaining = 0, expired = l.expired + (lot.remaining - carry) WHERE l.id = lot.id;
      IF lot.remaining > 0 THEN
        INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason) VALUES (xe.id, lot.id, -lot.remaining, 'expired');
      END IF;
      IF carry > 0 THEN
        INSERT INTO token_lots AS l
          (user_id, source, chain_ref, product_id, granted, remaining, starts_at, expires_at, entry_id)
        VALUES (lot.user_id, 'rollover', lot.chain_ref, lot.product_id, carry, carry, lot.expires_at,
          lot.expires_at + (lot.expires_at - lot.starts_at), xe.id)
        RETURNING l.id INTO n;
        INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason) VALUES (xe.id, n, carry, 'rollover');
        again := again OR lot.expires_at + (lot.expires_at - lot.starts_at) <= clock;
      END IF;
    END LOOP;
  END LOOP;

  -- Holds past their TTL expire on touch too (§C5), after the lots: each due active hold of the
  -- batch's users becomes an expire_hold request placed before the batch's own (a negative ord, no
  -- outcome row of its own), so a capture or a release later in the batch finds it expired, and its
  -- pinned tokens go back to their lots (or expire, when the lot has ended).
  -- One index probe (token_holds_user_active) when nothing is due, and the batch stays as it is.
  IF EXISTS (SELECT 1 FROM token_holds d
              WHERE d.user_id = ANY (due_users) AND d.status = 'active' AND d.expires_at <= clock) THEN
    SELECT requests || jsonb_agg(jsonb_build_object('ord', -1000000 + h.n, 'user_id', h.user_id,
             'op', 'expire_hold', 'hold_id', h.id, 'delta', 0, 'kind', 'SPEND') ORDER BY h.n)
      INTO requests
      FROM (SELECT d.id, d.user_id, row_number() OVER (ORDER BY d.user_id, d.expires_at, d.id)::integer AS n
              FROM token_holds d
             WHERE d.user_id = ANY (due_users) AND d.status = 'active' AND d.expires_at <= clock) AS h;
  END IF;

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
      FROM jsonb_to_recordset(requests || '[{"ord": 2147483647, "op": "end"}]') AS x(
        ord integer, user_id text, delta integer, mode text, kind text, description text,
        metadata jsonb, idempotency_key text, request_hash text, external_ref text,
        rate_key text, rate_points integer, rate_window_ms integer,
        op text, lot_source text, lot_ref text, lot_chain text, lot_product text,
        lot_starts_at timestamptz, lot_expires_at timestamptz, lot_rollover jsonb,
        lot_supersede boolean, ratio numeric,
        hold_id bigint, hold_ttl_seconds integer, hold_limit integer, overage text, reverses_entry bigint)
     ORDER BY x.ord
  LOOP
    -- Held tokens of lots that ended (in the touch step, or by the previous request's expiries) are
    -- pinned to their user's active holds, each up to what it holds in lots, the holds that end last
    -- first (a hold about to end by its TTL gets pins last: they would expire with it).
    IF cardinality(k_lot) > 0 THEN
      FOR i IN 1 .. cardinality(k_lot) LOOP
        WITH lazy AS (
          SELECT h.id, h.amount - h.pinned AS n,
                 sum(h.amount - h.pinned) OVER (ORDER BY h.expires_at DESC, h.id) AS hi
            FROM token_holds h
           WHERE h.user_id = k_user[i] AND h.status = 'active' AND h.amount > h.pinned
        ), part AS (
          SELECT lazy.id, least(lazy.n, k_n[i] - (lazy.hi - lazy.n))::integer AS n
            FROM lazy WHERE lazy.hi - lazy.n < k_n[i]
        ), pinned AS (
          INSERT INTO token_hold_pins AS p (hold_id, lot_id, amount)
            SELECT part.id, k_lot[i], part.n FROM part ORDER BY part.id
          ON CONFLICT (hold_id, lot_id) DO UPDATE SET amount = p.amount + EXCLUDED.amount
        )
        UPDATE token_holds h SET pinned = h.pinned + part.n
          FROM part WHERE h.id = part.id AND h.id = ANY (ARRAY(SELECT part.id FROM part));
        UPDATE token_balances b SET pinned = b.pinned + k_n[i] WHERE b.user_id = k_user[i];
        INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason) VALUES (NULL, k_lot[i], -k_n[i], 'hold');
      END LOOP;
      k_user := '{}'; k_lot := '{}'; k_n := '{}';
    END IF;

    -- The write step. Requests decide and move balances at once, in arrival order, but most of their
    -- rows wait here: a plain debit's (a spend, a transfer's sender, an admin's negative adjustment)
    -- and a capture's entry, a new hold's row, a closed hold's new state, and the draws from free lots
    -- (a debit's, a refund's from other lots, a capture's). Ids are taken
    -- from the sequences at once, so they keep arrival order. One statement writes all that waits
    -- (a single-row statement costs about five rows of a many-row one): at the end of the batch (the
    -- "end" request appended above), and before any request that could read it: one with an external
    -- reference (entries are unique by kind and external reference), and any request of a waiting
    -- user but a plain debit without an idempotency key (that user's lots, holds, entries by key, a
    -- spend to reverse). Each user's draws take, in arrival order, consecutive stretches of the user's
    -- usable lots laid end to end soonest expiry first, then oldest, non-expiring last, starting past
    -- the held tokens there (held - pinned, as the draw's request left the balance; no request that
    -- changes it joins a user's waiting draws): a move is where a draw's stretch overlaps a lot's.
    -- Where the user's first usable lot covers all of the user's draws, only that lot is read. The
    -- balance updates already checked that the lots hold the held and the drawn tokens.
    IF cardinality(w_user) > 0 AND (req.op = 'end' OR req.external_ref IS NOT NULL
        OR (req.user_id = ANY (w_user)
            AND (req.idempotency_key IS NOT NULL OR NOT (coalesce(req.op, 'change') = 'change' AND req.delta < 0)
                 OR req.user_id = ANY (r_user)))) THEN
      WITH written AS (
        INSERT INTO token_transactions OVERRIDING SYSTEM VALUE
          SELECT w.* FROM unnest(w_rows) AS w ORDER BY w.id
      ), debit AS (
        SELECT d.entry_id, d.user_id, d.reason, d.n,
               d.skip + sum(d.need) OVER (PARTITION BY d.user_id ORDER BY d.n) - d.need AS lo,
               d.skip + sum(d.need) OVER (PARTITION BY d.user_id ORDER BY d.n) AS hi
          FROM unnest(d_entry, d_user, d_need, d_reason, d_skip) WITH ORDINALITY
            AS d(entry_id, user_id, need, reason, skip, n)
      ), wanted AS (
        SELECT debit.user_id, max(debit.hi) AS total, f.id, f.remaining
          FROM debit LEFT JOIN LATERAL (
            SELECT l.id, l.remaining FROM token_lots l
             WHERE l.user_id = debit.user_id AND l.open AND coalesce(l.expires_at, 'infinity') > clock
             ORDER BY l.expires_at ASC NULLS LAST, l.id LIMIT 1) AS f ON true
         GROUP BY debit.user_id, f.id, f.remaining
      ), usable AS (
        SELECT wanted.id, wanted.user_id, 0::bigint AS lo, wanted.remaining::bigint AS hi
          FROM wanted WHERE wanted.remaining >= wanted.total
        UNION ALL
        SELECT l.id, l.user_id,
               sum(l.remaining) OVER (PARTITION BY l.user_id ORDER BY l.expires_at ASC NULLS LAST, l.id) - l.remaining,
               sum(l.remaining) OVER (PARTITION BY l.user_id ORDER BY l.expires_at ASC NULLS LAST, l.id)
          FROM token_lots l
         WHERE l.user_id = ANY (ARRAY(SELECT wanted.user_id FROM wanted
                                       WHERE wanted.remaining IS NULL OR wanted.remaining < wanted.total))
           AND l.open AND coalesce(l.expires_at, 'infinity') > clock
      ), moved AS (
        SELECT debit.entry_id, usable.id AS lot_id, debit.reason, debit.n AS arrival,
               usable.lo AS place, (least(debit.hi, usable.hi) - greatest(debit.lo, usable.lo))::integer AS n
          FROM debit JOIN usable ON usable.user_id = debit.user_id AND usable.lo < debit.hi AND debit.lo < usable.hi
      ), taken AS (
        UPDATE token_lots l SET remaining = l.remaining - t.n
          FROM (SELECT moved.lot_id, sum(moved.n)::integer AS n FROM moved GROUP BY moved.lot_id) AS t
         WHERE l.id = t.lot_id
        RETURNING t.n
      ), recorded AS (
        INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason)
          SELECT moved.entry_id, moved.lot_id, -moved.n, moved.reason FROM moved ORDER BY moved.arrival, moved.place
      )
      SELECT coalesce(sum(taken.n), 0) INTO drawn FROM taken;
      -- Holds are written by a statement of their own, only when there are some (a batch of spends
      -- does not open their tables: each table a statement writes costs it locks and executor set-up,
      -- ~4% of a batch of 12): new holds, closed holds' new state, and the pins closed
      -- holds did not use going back to their lots. A hold is never both opened and closed here, and a
      -- user whose pins go back has no draw here (a request of that user writes what waits first).
      -- Rows are found through primary keys (`= ANY`): a join planned while a table was small would go
      -- on scanning all of it as it grows.
      IF cardinality(h_rows) > 0 OR cardinality(c_rows) > 0 THEN
        WITH opened AS (
          INSERT INTO token_holds OVERRIDING SYSTEM VALUE SELECT h.* FROM unnest(h_rows) AS h ORDER BY h.id
        ), closed AS (
          UPDATE token_holds h SET status = c.status, captured = c.captured, closed_at = c.closed_at
            FROM unnest(c_rows) AS c
           WHERE h.id = c.id AND h.id = ANY (ARRAY(SELECT x.id FROM unnest(c_rows) AS x))
        ), back AS (
          UPDATE token_lots l SET remaining = l.remaining + x.n
            FROM (SELECT r.lot_id, sum(r.n)::integer AS n FROM unnest(r_lot, r_n) AS r(lot_id, n) GROUP BY r.lot_id) AS x
           WHERE l.id = x.lot_id AND l.id = ANY (r_lot)
        )
        INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason)
          SELECT r.entry_id, r.lot_id, r.n, r.reason
            FROM unnest(r_entry, r_lot, r_n, r_reason) WITH ORDINALITY AS r(entry_id, lot_id, n, reason, k) ORDER BY r.k;
      END IF;
      IF drawn <> coalesce((SELECT sum(x) FROM unnest(d_need) AS x), 0) THEN
        RAISE EXCEPTION 'ledger_apply: the lots of % hold % of the % tokens their balances cover', d_user, drawn,
          (SELECT sum(x) FROM unnest(d_need) AS x) USING ERRCODE = 'internal_error';
      END IF;
      w_rows := '{}'; h_rows := '{}'; c_rows := '{}'; w_user := '{}'; r_user := '{}';
      r_entry := '{}'; r_lot := '{}'; r_n := '{}'; r_reason := '{}';
      d_entry := '{}'; d_user := '{}'; d_need := '{}'; d_reason := '{}'; d_skip := '{}';
    END IF;
    EXIT WHEN req.op = 'end';

    ord := req.ord; status := NULL; id := NULL; user_id := req.user_id; amount := NULL;
    balance_after := NULL; balance_version := NULL; kind := req.kind; description := NULL;
    metadata := NULL; external_ref := NULL; idempotency_key := NULL; request_hash := NULL;
    created_at := NULL; available := NULL; retry_after_ms := NULL; hold_after := NULL;
    op := coalesce(req.op, 'change');
    entry := NULL;
    to_expire := '{}'; expire_why := '{}';

    IF req.rate_key IS NOT NULL THEN
      counter := counters -> req.rate_key;
      IF (counter ->> 'before')::integer + req.rate_place > req.rate_points THEN
        status := 'rate_limited';
        available := coalesce((SELECT b.balance - b.held FROM token_balances b WHERE b.user_id = req.user_id), 0);
        retry_after_ms := greatest(1, ceil(extract(epoch FROM (counter ->> 'ends')::timestamptz - now()) * 1000))::integer;
        RETURN NEXT;
        CONTINUE;
      END IF;
    END IF;

    IF op IN ('reserve', 'capture', 'release', 'expire_hold') THEN
      -- Holds (issue 19). The hold is read under its owner's balance lock, so a capture, a release
      -- and the sweeper's expiry of one hold are serialized and only the first resolves it.
      hold := NULL; used := NULL; request_hash := NULL; free := 0; at_limit := false; fits := false;
      IF op = 'reserve' THEN
        -- A new hold in one statement when it may be made: its key is new, the user is below the limit
        -- (the limit-th active hold does not exist: a probe of at most `limit` index entries) and the
        -- free tokens cover it. Held rises now. Otherwise the reads below tell which refusal it is.
        need := -req.delta;
        UPDATE token_balances b SET held = b.held + need, version = b.version + 1, updated_at = now()
         WHERE b.user_id = req.user_id AND b.balance - b.held >= need
           AND NOT EXISTS (SELECT 1 FROM token_holds h
                            WHERE h.user_id = req.user_id AND h.idempotency_key = req.idempotency_key)
           AND NOT (req.hold_limit IS NOT NULL AND (req.hold_limit <= 0 OR EXISTS (
                 SELECT 1 FROM token_holds h WHERE h.user_id = req.user_id AND h.status = 'active'
                 OFFSET greatest(req.hold_limit - 1, 0))))
        RETURNING b.balance, b.version, b.held, b.updated_at INTO new_balance, new_version, new_held, changed_at;
        fits := FOUND;
        IF NOT fits THEN
          SELECT h.* INTO hold FROM token_holds h
           WHERE h.user_id = req.user_id AND h.idempotency_key = req.idempotency_key;
          SELECT b.balance - b.held,
                 req.hold_limit IS NOT NULL AND (req.hold_limit <= 0 OR EXISTS (
                   SELECT 1 FROM token_holds h WHERE h.user_id = b.user_id AND h.status = 'active'
                   OFFSET greatest(req.hold_limit - 1, 0)))
            INTO free, at_limit
            FROM token_balances b WHERE b.user_id = req.user_id;
          free := coalesce(free, 0);
        END IF;
      ELSE
        SELECT h.* INTO hold FROM token_holds h WHERE h.id = req.hold_id AND h.user_id = req.user_id;
        IF op = 'capture' AND -req.delta > hold.amount THEN
          -- Only a capture above its hold (CAP) takes free tokens.
          SELECT b.balance - b.held INTO free FROM token_balances b WHERE b.user_id = req.user_id;
          free := coalesce(free, 0);
        END IF;
      END IF;
      IF op = 'reserve' AND hold.id IS NOT NULL THEN
        status := 'hold_replay'; request_hash := hold.request_hash;
      ELSIF op = 'reserve' AND at_limit THEN
        status := 'too_many_holds';
      ELSIF op = 'reserve' AND NOT fits THEN
        status := 'insufficient';
      ELSIF op = 'reserve' THEN
        -- A new hold: its row waits for the write step; its tokens stay in the lots, where draws now
        -- start past them (held rose above).
        hold := ROW(nextval('token_holds_id_seq'), req.user_id, need, 'active', NULL, clock,
          clock + req.hold_ttl_seconds * interval '1 second', NULL, req.idempotency_key, req.request_hash,
          req.description, req.metadata, 0);
        h_rows := h_rows || hold; w_user := w_user || req.user_id;
        notes := notes || json_build_object('userId', req.user_id, 'balance', new_balance, 'delta', 0,
          'version', new_version, 'entryId', NULL, 'at', changed_at, 'kind', 'HOLD', 'held', new_held,
          'holdId', hold.id)::text;
        status := 'reserved';
        available := new_balance - new_held;
      ELSIF hold.id IS NULL THEN
        status := 'hold_not_found';
      ELSIF op = 'capture' AND hold.status = 'captured' THEN
        SELECT t.* INTO entry FROM token_transactions t WHERE t.kind = 'SPEND' AND t.external_ref = 'hold:' || hold.id;
        status := 'duplicate';
      ELSIF op = 'capture' AND hold.status <> 'active' THEN
        status := 'hold_' || hold.status;
      ELSIF op = 'capture' AND -req.delta > hold.amount AND coalesce(req.overage, 'REJECT') <> 'CAP' THEN
        status := 'amount_exceeds_hold';
      ELSIF op = 'capture' THEN
        -- One SPEND of what is captured: the hold's pins first (soonest expiry first), then from the
        -- lots, and with CAP what the hold lacks from free tokens, never below 0 (the shortfall is
        -- recorded). Held falls by the hold, pinned by its pins.
        take := least(-req.delta, hold.amount + free);
        used := least(take, hold.pinned);
        UPDATE token_balances b
           SET balance = b.balance - take, held = b.held - hold.amount, pinned = b.pinned - hold.pinned,
               version = b.version + 1, updated_at = now()
         WHERE b.user_id = req.user_id
        RETURNING b.balance, b.version, b.held, b.updated_at, b.held - b.pinned
          INTO new_balance, new_version, new_held, changed_at, live_held;
        -- The entry waits for the write step, like a plain debit's.
        entry := ROW(nextval('token_transactions_id_seq'), req.user_id, -take, new_balance, new_version, 'SPEND',
          coalesce(req.description, hold.description),
          coalesce(req.metadata, '{}'::jsonb) || jsonb_build_object('holdId', hold.id::text, 'held', hold.amount,
            'captured', take, 'requested', -req.delta, 'shortfall', -req.delta - take),
          NULL, NULL, 'hold:' || hold.id, changed_at);
        w_rows := w_rows || entry; w_user := w_user || req.user_id;
        notes := notes || json_build_object('userId', entry.user_id, 'balance', entry.balance_after,
          'delta', entry.amount, 'version', entry.balance_version, 'entryId', entry.id,
          'at', entry.created_at, 'kind', entry.kind, 'held', new_held, 'holdId', hold.id)::text;
        hold.status := 'captured'; hold.captured := take; hold.closed_at := clock;
        c_rows := c_rows || hold;  -- written by the write step (its user waits already, with the entry)
        need := take - used;
        IF need > 0 THEN
          -- The rest is drawn from the lots like a debit's draw, past the tokens other holds keep there.
          d_entry := d_entry || entry.id; d_user := d_user || req.user_id;
          d_need := d_need || need; d_reason := d_reason || 'capture'::text; d_skip := d_skip || live_held;
        END IF;
        status := 'applied';
      ELSIF hold.status = 'captured' THEN
        status := 'hold_already_captured';
      ELSIF hold.status <> 'active' THEN
        -- Released or expired already: a release replays; the sweeper's request counts an expiry
        -- once, when this batch's touch step did it.
        status := CASE WHEN op = 'expire_hold' AND swept ? hold.id::text THEN 'hold_expired' ELSE 'hold_closed' END;
        swept := swept - hold.id::text;
      ELSIF op = 'expire_hold' AND hold.expires_at > clock THEN
        status := 'unchanged';
      ELSE
        -- Release, or expiry by the clock: held falls, no entry.
        used := 0;
        hold.status := CASE op WHEN 'release' THEN 'released' ELSE 'expired' END; hold.closed_at := clock;
        c_rows := c_rows || hold; w_user := w_user || req.user_id;  -- written by the write step
        UPDATE token_balances b
           SET held = b.held - hold.amount, pinned = b.pinned - hold.pinned, version = b.version + 1, updated_at = now()
         WHERE b.user_id = req.user_id
        RETURNING b.balance, b.version, b.held, b.updated_at INTO new_balance, new_version, new_held, changed_at;
        notes := notes || json_build_object('userId', req.user_id, 'balance', new_balance, 'delta', 0,
          'version', new_version, 'entryId', NULL, 'at', changed_at,
          'kind', CASE op WHEN 'release' THEN 'RELEASE' ELSE 'HOLD_EXPIRED' END, 'held', new_held,
          'holdId', hold.id)::text;
        status := CASE op WHEN 'release' THEN 'released' ELSE 'hold_expired' END;
        IF req.ord < 0 THEN
          swept := swept || jsonb_build_object(hold.id::text, true);
        END IF;
      END IF;
      IF used < hold.pinned THEN
        -- The pins the hold did not use (none when a capture used them all) go back to their lots, the
        -- soonest-expiring consumed first.
        -- A pin's lot is read through its primary key, one probe per pin: a join planned while the
        -- tables were small would go on scanning every lot as they grow. A hold has a pin or two: a
        -- loop over them costs less than aggregates, whose set-up alone costs more (each capture).
        p_lot := '{}'; p_back := '{}'; ids := '{}'; to_use := used;
        FOR mv IN
          SELECT q.lot_id, q.amount, q.expires_at
            FROM (SELECT p.lot_id, p.amount, (SELECT l.expires_at FROM token_lots l WHERE l.id = p.lot_id) AS expires_at
                    FROM token_hold_pins p WHERE p.hold_id = hold.id) AS q
           ORDER BY q.expires_at ASC NULLS LAST, q.lot_id
        LOOP
          IF mv.amount > to_use THEN
            p_lot := p_lot || mv.lot_id; p_back := p_back || (mv.amount - to_use);
            IF mv.expires_at <= clock THEN ids := ids || mv.lot_id; END IF;
          END IF;
          to_use := greatest(0, to_use - mv.amount);
        END LOOP;
        why := CASE op WHEN 'capture' THEN 'capture_rest' WHEN 'release' THEN 'release' ELSE 'hold_expired' END;
        IF cardinality(ids) = 0 THEN
          -- They wait for the write step; so does any request of the user, even a plain debit (whose
          -- draw may need them).
          r_entry := r_entry || array_fill(entry.id, ARRAY[cardinality(p_lot)]); r_lot := r_lot || p_lot;
          r_n := r_n || p_back; r_reason := r_reason || array_fill(why, ARRAY[cardinality(p_lot)]);
          r_user := r_user || req.user_id;
        ELSE
          -- Some go back to a lot that has ended: they all go back now, and those expire now (after
          -- the request's own entry, whose id is taken).
          UPDATE token_lots l SET remaining = l.remaining + x.n
            FROM unnest(p_lot, p_back) AS x(lot_id, n) WHERE l.id = x.lot_id AND l.id = ANY (p_lot);
          INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason)
            SELECT entry.id, x.lot_id, x.n, why FROM unnest(p_lot, p_back) WITH ORDINALITY AS x(lot_id, n, k) ORDER BY x.k;
          to_expire := ids;
          expire_why := array_fill('hold_past_end'::text, ARRAY[cardinality(ids)]);
        END IF;
      END IF;
      IF hold.id IS NOT NULL THEN
        hold_after := to_jsonb(hold);  -- the hold as this request left it (a capture's too)
      END IF;
      amount := 0;
    ELSIF op IN ('expire', 'extend', 'cut') THEN
      -- expire: the touch step did the work; the row says how many tokens it expired for the user
      -- (the first request of a user in the batch gets them). extend/cut: move the lot's end.
      amount := 0;
      IF op = 'expire' THEN
        status := 'expired';
        amount := coalesce((touched ->> req.user_id)::integer, 0);
        touched := touched - req.user_id;
      ELSE
        SELECT l.* INTO lot FROM token_lots l WHERE l.source_ref = req.lot_ref;
        IF lot.id IS NULL OR lot.user_id <> req.user_id THEN
          status := 'no_lot';
        ELSIF op = 'extend' AND lot.expires_at IS NOT NULL AND req.lot_expires_at > lot.expires_at THEN
          status := 'lot_changed';
          UPDATE token_lots l SET expires_at = req.lot_expires_at WHERE l.id = lot.id;
          INSERT INTO token_lot_moves (lot_id, amount, reason) VALUES (lot.id, 0, 'extend');
        ELSIF op = 'cut' AND req.lot_expires_at < coalesce(lot.expires_at, 'infinity') THEN
          status := 'lot_changed';
          IF req.lot_expires_at <= clock THEN
            -- It ends now: the expiry below moves its end, after reading what of it is held.
            to_expire := ARRAY[lot.id]; expire_why := ARRAY['cut'];
          ELSE
            UPDATE token_lots l SET expires_at = req.lot_expires_at WHERE l.id = lot.id;
          END IF;
          INSERT INTO token_lot_moves (lot_id, amount, reason) VALUES (lot.id, 0, 'cut');
        ELSE
          status := 'unchanged';
        END IF;
      END IF;
    ELSE
      -- An earlier entry with this idempotency key (a replay) or this external reference (a
      -- duplicate), or a lot already opened for this store transaction (a duplicate).
      entry := NULL;
      IF req.idempotency_key IS NOT NULL THEN
        SELECT * INTO entry FROM token_transactions t
         WHERE t.user_id = req.user_id AND t.kind = req.kind AND t.idempotency_key = req.idempotency_key;
      END IF;
      IF entry.id IS NULL AND req.external_ref IS NOT NULL THEN
        SELECT * INTO entry FROM token_transactions t WHERE t.kind = req.kind AND t.external_ref = req.external_ref;
      END IF;
      IF entry.id IS NULL AND op = 'change' AND req.lot_ref IS NOT NULL AND req.delta > 0 THEN
        SELECT t.* INTO entry FROM token_lots l JOIN token_transactions t ON t.id = l.entry_id
         WHERE l.source_ref = req.lot_ref;
      END IF;
      IF entry.id IS NOT NULL THEN
        status := CASE WHEN req.idempotency_key IS NOT NULL AND entry.idempotency_key = req.idempotency_key
                       THEN 'replay' ELSE 'duplicate' END;
        IF status = 'replay' THEN
          available := coalesce((SELECT b.balance - b.held FROM token_balances b WHERE b.user_id = req.user_id), 0);
        END IF;
      ELSE
        lot := NULL; refunded := NULL; lot_meta := NULL;
        take := req.delta;
        IF op = 'refund' THEN
          -- §B6: target = ceil(granted × ratio); the refunded lot's own remainder first, its expired
          -- part counts as returned, the rest from the owner's other lots (FEFO), never below 0.
          SELECT l.* INTO lot FROM token_lots l WHERE l.source_ref = req.lot_ref;
          IF lot.user_id <> req.user_id THEN
            status := 'no_lot';
            available := coalesce((SELECT b.balance - b.held FROM token_balances b WHERE b.user_id = req.user_id), 0);
            RETURN NEXT;
            CONTINUE;
          END IF;
          SELECT b.balance - b.held INTO n FROM token_balances b WHERE b.user_id = req.user_id;
          n := coalesce(n, 0);
          IF lot.id IS NOT NULL THEN
            -- Only the lot's free tokens: those of it past the user's first held - pinned tokens in
            -- lots, laid end to end soonest-expiring first.
            SELECT lot.remaining - coalesce(least(u.remaining, greatest(0, b.held - b.pinned - u.lo)), 0)
              INTO free
              FROM token_balances b
              LEFT JOIN (
                SELECT l.id, l.remaining,
                       sum(l.remaining) OVER (ORDER BY l.expires_at ASC NULLS LAST, l.id) - l.remaining AS lo
                  FROM token_lots l
                 WHERE l.user_id = req.user_id AND l.open AND coalesce(l.expires_at, 'infinity') > clock
              ) AS u ON u.id = lot.id
             WHERE b.user_id = req.user_id;
            target := ceil(lot.granted * coalesce(req.ratio, 1))::integer;
            from_lot := least(coalesce(free, lot.remaining), target);
            already := least(lot.expired, target - from_lot);
          ELSE
            target := ceil(greatest(0, -coalesce(req.delta, 0)) * coalesce(req.ratio, 1))::integer;
            from_lot := 0;
            already := 0;
          END IF;
          from_others := least(greatest(0, target - from_lot - already), n - from_lot);
          take := -(from_lot + from_others);
          lot_meta := jsonb_build_object('target', target, 'fromLot', from_lot, 'alreadyExpired', already,
            'fromOthers', from_others, 'shortfall', target - from_lot - already - from_others,
            'recovered', from_lot + from_others, 'lotId', lot.id);
        ELSIF op = 'reverse_refund' THEN
          SELECT t.* INTO refunded FROM token_transactions t
           WHERE t.kind = 'REFUND' AND t.external_ref = req.external_ref;
          take := coalesce(req.delta, 0);
          IF refunded.user_id <> req.user_id THEN
            status := 'no_lot';
            available := coalesce((SELECT b.balance - b.held FROM token_balances b WHERE b.user_id = req.user_id), 0);
            RETURN NEXT;
            CONTINUE;
          END IF;
          IF refunded.id IS NOT NULL THEN
            take := -refunded.amount;
            lot_meta := jsonb_build_object('refundEntryId', refunded.id);
          END IF;
        ELSIF op = 'reverse_spend' THEN
          SELECT t.* INTO refunded FROM token_transactions t
           WHERE t.id = req.reverses_entry AND t.user_id = req.user_id AND t.kind = 'SPEND';
          IF refunded.id IS NULL THEN
            RAISE EXCEPTION 'ledger_apply: % is no spend of %', req.reverses_entry, req.user_id
              USING ERRCODE = 'internal_error';
          END IF;
          take := -refunded.amount;
          lot_meta := jsonb_build_object('reversesEntryId', refunded.id::text);
        ELSIF req.mode = 'what_is_left' THEN
          SELECT -least(b.balance - b.held, -req.delta) INTO take FROM token_balances b WHERE b.user_id = req.user_id;
          take := coalesce(take, 0);
          lot_meta := jsonb_build_object('recovered', -take, 'shortfall', take - req.delta);
        END IF;
        -- One conditional UPDATE moves the balance; the CHECKs on token_balances back its bounds.
        UPDATE token_balances b
           SET balance = (b.balance::bigint + take)::integer, version = b.version + 1, updated_at = now()
         WHERE b.user_id = req.user_id AND b.balance::bigint + take BETWEEN b.held AND max_balance
        RETURNING b.balance, b.version, b.held, b.updated_at, b.held - b.pinned
          INTO new_balance, new_version, new_held, changed_at, live_held;
        IF NOT FOUND THEN
          status := CASE WHEN take < 0 THEN 'insufficient' ELSE 'limit' END;
          available := coalesce((SELECT b.balance - b.held FROM token_balances b WHERE b.user_id = req.user_id), 0);
          RETURN NEXT;
          CONTINUE;
        END IF;

        entry := ROW(nextval('token_transactions_id_seq'), req.user_id, take, new_balance, new_version, req.kind,
          req.description,
          CASE WHEN lot_meta IS NULL THEN req.metadata ELSE coalesce(req.metadata, '{}'::jsonb) || lot_meta END,
          req.idempotency_key, req.request_hash, req.external_ref, changed_at);
        IF op = 'change' AND take < 0 THEN
          w_rows := w_rows || entry;  -- a plain debit's entry waits for the write step, its user with its draw
        ELSE
          INSERT INTO token_transactions OVERRIDING SYSTEM VALUE SELECT (entry).*;
        END IF;
        notes := notes || json_build_object('userId', entry.user_id, 'balance', entry.balance_after,
          'delta', entry.amount, 'version', entry.balance_version, 'entryId', entry.id,
          'at', entry.created_at, 'kind', entry.kind, 'held', new_held)::text;
        status := 'applied';

        -- The entry's lot moves.
        need := 0;
        IF op = 'refund' AND from_lot > 0 THEN
          UPDATE token_lots l SET remaining = l.remaining - from_lot WHERE l.id = lot.id;
          INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason) VALUES (entry.id, lot.id, -from_lot, 'refund');
          need := from_others;
        ELSIF op IN ('reverse_refund', 'reverse_spend') AND refunded.id IS NOT NULL THEN
          -- Back into the lots the refund or spend took from; a part whose lot has ended expires at once.
          n := take;
          FOR mv IN
            SELECT m.lot_id, -m.amount AS back, l.expires_at FROM token_lot_moves m JOIN token_lots l ON l.id = m.lot_id
             WHERE m.entry_id = refunded.id AND m.amount < 0 ORDER BY m.id
          LOOP
            UPDATE token_lots l SET remaining = l.remaining + mv.back WHERE l.id = mv.lot_id;
            INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason) VALUES (entry.id, mv.lot_id, mv.back, op);
            n := n - mv.back;
            IF mv.expires_at <= clock THEN
              to_expire := to_expire || mv.lot_id; expire_why := expire_why || 'reverse_past_end'::text;
            END IF;
          END LOOP;
          take := n;  -- what no move accounts for (written before lots, a hold's pins) opens a restore lot
        ELSIF take < 0 THEN
          need := -take;
        END IF;

        IF need > 0 THEN
          -- A debit's draw from free lots (a refund's: from the owner's other lots) waits for the
          -- write step, which draws every waiting debit's tokens in one statement.
          d_entry := d_entry || entry.id; d_user := d_user || req.user_id; d_need := d_need || need;
          d_reason := d_reason || lower(req.kind); d_skip := d_skip || live_held; w_user := w_user || req.user_id;
        ELSIF take > 0 AND op IN ('change', 'reverse_refund', 'reverse_spend') THEN
          -- A credit opens a lot; with no lot_source it never expires, its source following the kind.
          INSERT INTO token_lots AS l
            (user_id, source, source_ref, chain_ref, product_id, granted, remaining, starts_at, expires_at,
             rollover, entry_id)
          VALUES (req.user_id,
            coalesce(CASE WHEN op = 'change' THEN req.lot_source WHEN op = 'reverse_spend' THEN 'restore' END,
              CASE req.kind WHEN 'PURCHASE' THEN 'pack' WHEN 'LEGACY_IMPORT' THEN 'legacy'
                WHEN 'REFUND_REVERSAL' THEN 'restore' ELSE 'grant' END),
            CASE WHEN op = 'change' THEN req.lot_ref END, req.lot_chain, req.lot_product, take, take,
            coalesce(req.lot_starts_at, clock), req.lot_expires_at, req.lot_rollover, entry.id)
          RETURNING l.id INTO n;
          INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason) VALUES (entry.id, n, take, lower(req.kind));
          IF req.lot_expires_at <= clock THEN
            to_expire := to_expire || n::bigint; expire_why := expire_why || 'born_expired'::text;
          END IF;
          IF req.lot_supersede AND req.lot_chain IS NOT NULL THEN
            -- An immediate upgrade: the free remainder of the chain's other open lots expires now.
            ids := ARRAY(SELECT l.id FROM token_lots l
                          WHERE l.user_id = req.user_id AND l.chain_ref = req.lot_chain AND l.id <> n
                            AND (l.expires_at IS NULL OR l.expires_at > clock)
                          ORDER BY l.expires_at NULLS LAST, l.id);
            to_expire := to_expire || ids;
            expire_why := expire_why || array_fill('superseded'::text, ARRAY[cardinality(ids)]);
          END IF;
        END IF;
      END IF;
    END IF;

    -- What this request expires now (a cut, a lot born expired, superseded lots, a reversal past a
    -- lot's end): one EXPIRE entry per lot, after the request's own entry. A superseded lot ends now.
    IF cardinality(to_expire) > 0 THEN
      -- A lot that ends before its time (a cut, an upgrade) keeps held what of it lies within the
      -- user's first held - pinned tokens in lots, laid end to end soonest-expiring first (read before
      -- any of them ends); those are pinned like the touch step's. Other expiries here are of lots
      -- that had ended already: nothing of them is held.
      keep := coalesce((SELECT b.held - b.pinned FROM token_balances b WHERE b.user_id = req.user_id), 0);
      to_keep := ARRAY(
        SELECT CASE WHEN keep > 0 AND x.why IN ('cut', 'superseded')
                    THEN coalesce(least(u.remaining, greatest(0, keep - u.lo)), 0) ELSE 0 END
          FROM unnest(to_expire, expire_why) WITH ORDINALITY AS x(id, why, k)
          LEFT JOIN (
            SELECT l.id, l.remaining,
                   sum(l.remaining) OVER (ORDER BY l.expires_at ASC NULLS LAST, l.id) - l.remaining AS lo
              FROM token_lots l
             WHERE keep > 0 AND l.user_id = req.user_id AND l.open AND coalesce(l.expires_at, 'infinity') > clock
          ) AS u ON u.id = x.id
         ORDER BY x.k);
      FOR i IN 1 .. cardinality(to_expire) LOOP
        SELECT l.* INTO lot FROM token_lots l WHERE l.id = to_expire[i];
        IF expire_why[i] = 'superseded' THEN
          UPDATE token_lots l SET expires_at = clock WHERE l.id = lot.id;
        ELSIF expire_why[i] = 'cut' THEN
          UPDATE token_lots l SET expires_at = req.lot_expires_at WHERE l.id = lot.id;
          lot.expires_at := req.lot_expires_at;  -- its EXPIRE names the end it was cut to
        END IF;
        CONTINUE WHEN lot.remaining = 0;
        IF to_keep[i] > 0 THEN
          k_user := k_user || lot.user_id; k_lot := k_lot || lot.id; k_n := k_n || to_keep[i];
        END IF;
        UPDATE token_lots l SET remaining = 0, expired = l.expired + lot.remaining - to_keep[i] WHERE l.id = lot.id;
        lot.remaining := lot.remaining - to_keep[i];
        CONTINUE WHEN lot.remaining = 0;
        UPDATE token_balances b
           SET balance = b.balance - lot.remaining, version = b.version + 1, updated_at = now()
         WHERE b.user_id = lot.user_id
        RETURNING b.balance, b.version, b.held, b.updated_at INTO new_balance, new_version, new_held, changed_at;
        INSERT INTO token_transactions AS t
          (user_id, amount, balance_after, balance_version, kind, description, metadata, created_at)
        VALUES (lot.user_id, -lot.remaining, new_balance, new_version, 'EXPIRE', 'Tokens expired unused',
          jsonb_build_object('reason', expire_why[i], 'lotId', lot.id, 'source', lot.source,
            'expiresAt', lot.expires_at),
          changed_at)
        RETURNING * INTO xe;
        INSERT INTO token_lot_moves (entry_id, lot_id, amount, reason) VALUES (xe.id, lot.id, -lot.remaining, expire_why[i]);
        notes := notes || json_build_object('userId', xe.user_id, 'balance', xe.balance_after,
          'delta', xe.amount, 'version', xe.balance_version, 'entryId', xe.id, 'at', xe.created_at,
          'kind', xe.kind, 'held', new_held)::text;
        amount := CASE WHEN entry.id IS NULL THEN coalesce(amount, 0) + lot.remaining ELSE amount END;
      END LOOP;
    END IF;

    IF status IN ('applied', 'replay', 'duplicate') THEN
      -- The row is the entry.
      id := entry.id; user_id := entry.user_id; amount := entry.amount; balance_after := entry.balance_after;
      balance_version := entry.balance_version; kind := entry.kind; description := entry.description;
      metadata := entry.metadata; external_ref := entry.external_ref;
      idempotency_key := entry.idempotency_key; request_hash := entry.request_hash;
      created_at := entry.created_at;
    ELSIF req.ord < 0 THEN
      CONTINUE;  -- an expiry the touch step added: no row of its own
    ELSIF available IS NULL THEN
      -- expired, lot_changed, unchanged, no_lot, a hold's: the balance now, and in `amount` the tokens
      -- expired (a reserve knows it already).
      available := coalesce((SELECT b.balance - b.held FROM token_balances b WHERE b.user_id = req.user_id), 0);
    END IF;
    RETURN NEXT;
  END LOOP;

  -- The batch's changes in as few NOTIFYs as fit (each NOTIFYing commit takes PostgreSQL's global
  -- notify lock; a payload must stay under 8000 bytes). Delivered at commit.
  FOR i IN 1 .. cardinality(notes) LOOP
    IF length(changes) + length(notes[i]) > 7000 THEN
      PERFORM pg_notify('token_balance_changed', '[' || changes || ']');
      changes := '';
    END IF;
    changes := CASE WHEN changes = '' THEN notes[i] ELSE changes || ',' || notes[i] END;
  END LOOP;
  IF changes <> '' THEN
    PERFORM pg_notify('token_balance_changed', '[' || changes || ']');
  END IF;
END;
$$;
