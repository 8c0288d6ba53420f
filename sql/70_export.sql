-- shadow_subscribe / shadow_unsubscribe / shadow_export and the bookkeeping
-- they share. Shipping runs with the caller's rights (so the caller's user
-- mapping is used and its row reads are its own); only catalog writes and
-- shadow-table purges go through SECURITY DEFINER helpers, each of which checks
-- that the caller owns the table.

-- Locks a subscription for one exporter at a time and returns its current row.
CREATE FUNCTION pgshadow._lock_subscription(p_id bigint) RETURNS pgshadow.subscription
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub    pgshadow.subscription;
    v_shadow name;
    v_owner  name;
BEGIN
    -- every export path comes here before it reads a watermark: a database
    -- moved into another xid history is re-baselined first
    PERFORM pgshadow._check_history((SELECT s.tbl FROM pgshadow.subscription s WHERE s.id = p_id));
    SELECT * INTO v_sub FROM pgshadow.subscription WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: subscription % does not exist', p_id USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM pgshadow._check_may_export(v_sub.tbl, pgshadow._caller());
    -- the table may have changed owner since it was tracked
    SELECT t.shadow, c.relowner::regrole::name INTO v_shadow, v_owner
      FROM pgshadow.tracked t JOIN pg_class c ON c.oid = t.tbl WHERE t.tbl = v_sub.tbl;
    IF NOT has_table_privilege(v_owner, format('pgshadow.%I', v_shadow), 'SELECT') THEN
        EXECUTE format('GRANT SELECT ON pgshadow.%I TO %I', v_shadow, v_owner);
    END IF;
    -- a role the owner granted exports reads the changed keys with its own
    -- rights (it may SELECT the table); shadow_revoke_export takes this back
    IF NOT pgshadow._acts_for(pgshadow._caller(), v_sub.tbl)
       AND NOT has_table_privilege(pgshadow._caller(), format('pgshadow.%I', v_shadow), 'SELECT') THEN
        EXECUTE format('GRANT SELECT ON pgshadow.%I TO %I', v_shadow, pgshadow._caller());
    END IF;
    RETURN v_sub;
END
$$;

-- Moves the watermark: called only after the target committed the batch.
CREATE FUNCTION pgshadow._advance(p_id bigint, p_snapshot pg_snapshot, p_keys bigint, p_batches integer)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tbl regclass;
BEGIN
    SELECT tbl INTO v_tbl FROM pgshadow.subscription WHERE id = p_id;
    PERFORM pgshadow._check_may_export(v_tbl, pgshadow._caller());
    -- A watermark is a snapshot of this server's past: one ahead of its
    -- transaction counter would make the next export re-baseline every
    -- subscription of every role (pgshadow._history_break).
    IF pg_snapshot_xmax(p_snapshot) > greatest(pg_snapshot_xmax(pg_current_snapshot()),
                                                (pg_current_xact_id()::text::numeric + 1)::text::xid8) THEN
        RAISE EXCEPTION 'pgshadow: watermark % of subscription % is in the future of this server (next transaction %)',
            p_snapshot, p_id, pg_snapshot_xmax(pg_current_snapshot())
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgshadow.subscription
       SET snapshot = p_snapshot, batch_no = batch_no + p_batches, needs_copy = false,
           keys_shipped = keys_shipped + p_keys, last_export = clock_timestamp(),
           last_error = NULL, last_error_at = NULL
     WHERE id = p_id;
    IF p_batches > 0 THEN
        DELETE FROM pgshadow.error WHERE sub_id = p_id;
    END IF;
END
$$;

-- Records the columns a subscription to all columns ships now
-- (_current_columns): only the table's current columns, so a caller can
-- neither narrow nor widen what ships.
CREATE FUNCTION pgshadow._set_columns(p_id bigint, p_columns name[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub pgshadow.subscription;
BEGIN
    SELECT * INTO v_sub FROM pgshadow.subscription WHERE id = p_id;
    PERFORM pgshadow._check_may_export(v_sub.tbl, pgshadow._caller());
    IF NOT v_sub.all_columns OR p_columns IS DISTINCT FROM pgshadow._columns(v_sub.tbl, NULL, NULL) THEN
        RAISE EXCEPTION 'pgshadow: subscription % of % ships a column list of its own, or % are not its columns',
            p_id, v_sub.tbl, p_columns
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgshadow.subscription SET columns = p_columns WHERE id = p_id;
END
$$;

-- Records why an export failed (called by clients in their own transaction,
-- since the failed export itself rolls back).
CREATE FUNCTION pgshadow._record_error(p_target text, p_error text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE pgshadow.subscription s
       SET last_error = left(p_error, 2000), last_error_at = clock_timestamp()
     WHERE s.target = p_target
       AND pgshadow._may_export(pgshadow._caller(), s.tbl);
END
$$;

-- Empties what every subscription of the table has shipped: the rows whose
-- transaction is older than the oldest watermark. The shadow table has two
-- partitions; writers append to the current one. When everything in the other
-- is shipped, it is truncated (NOWAIT: a writer still busy there, or an export
-- reading, just postpones it) and becomes the current one, and the partition
-- writers leave drains and is truncated by a later purge. No row is ever
-- deleted, so no dead rows pile up however busy the table is.
-- Truncating is decided on current state only: under REPEATABLE READ or
-- SERIALIZABLE the transaction's snapshot predates changes other sessions
-- committed since (into the partition it takes for empty, after another
-- purge switched generations), so there the purge does nothing and leaves
-- the work to the next one run under READ COMMITTED (every export under it,
-- and `pgshadow export` / `ship` after their commit).
-- Before deciding, it drops the backlog of every subscription of the table
-- that has held changes back longer than pgshadow.max_backlog_age
-- (_drop_backlogs), so a target nobody exports to any more cannot make the
-- shadow table grow without bound.
CREATE FUNCTION pgshadow._purge(p_tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tr     pgshadow.tracked;
    v_min    xid8;
    v_other  text;
    v_cur    text;
    v_keep   boolean;
    v_round  integer;
    v_limit  interval := pgshadow._duration('pgshadow.max_backlog_age', '0');
BEGIN
    IF NOT pgshadow._export_granted(pgshadow._caller(), p_tbl) THEN
        PERFORM pgshadow._check_owner(p_tbl, pgshadow._caller());
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RETURN;
    END IF;
    -- watermarks of another xid history say nothing about what was shipped:
    -- re-baseline first, and hold off a re-baseline until this purge is done
    PERFORM pgshadow._check_history(p_tbl);
    LOCK TABLE pgshadow.history IN ROW SHARE MODE;
    SELECT * INTO v_tr FROM pgshadow.tracked WHERE tbl = p_tbl;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_limit > interval '0' THEN
        PERFORM pgshadow._drop_backlogs(v_tr, v_limit);
    END IF;
    -- sync subscriptions ship at write time and never hold rows back; with no
    -- other subscription left, nothing committed so far is of any use
    -- (ORDER BY/LIMIT, not min(): PostgreSQL 13 and 14 have no min(xid8))
    v_min := coalesce((SELECT pg_snapshot_xmin(snapshot) FROM pgshadow.subscription
                        WHERE tbl = p_tbl AND mode <> 'sync' ORDER BY 1 LIMIT 1),
                      pg_snapshot_xmin(pg_current_snapshot()));
    -- at most twice: empty the other partition and move the writers there,
    -- then empty the one they left if it is fully shipped too (a quiet table
    -- ends with an empty shadow)
    FOR v_round IN 1 .. 2 LOOP
        v_cur := format('pgshadow.%I', v_tr.shadow || '_g' || v_tr.gen);
        v_other := format('pgshadow.%I', v_tr.shadow || '_g' || (1 - v_tr.gen));
        EXECUTE format('SELECT EXISTS (SELECT FROM %s WHERE shadow_xid >= $1)', v_other) USING v_min INTO v_keep;
        EXIT WHEN v_keep;  -- the other partition still holds unshipped changes
        BEGIN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', v_other);
            -- recheck under the lock: a writer that read the old generation may have added rows
            EXECUTE format('SELECT EXISTS (SELECT FROM %s WHERE shadow_xid >= $1)', v_other) USING v_min INTO v_keep;
            EXIT WHEN v_keep;
            IF v_tr.versions IS NOT NULL THEN
                -- multi-master: a key's own latest change outlives its shadow rows as its version
                EXECUTE format('INSERT INTO pgshadow.%1$I AS v (%2$s, at, node)'
                               ' SELECT %2$s, max(shadow_at), $1 FROM %3$s WHERE shadow_op <> ''T'' GROUP BY %2$s'
                               ' ON CONFLICT (%2$s) DO UPDATE SET at = EXCLUDED.at, node = EXCLUDED.node'
                               ' WHERE (EXCLUDED.at, EXCLUDED.node) > (v.at, v.node)',
                               v_tr.versions, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c), v_other)
                  USING pgshadow._node();
            END IF;
            EXECUTE format('TRUNCATE %s', v_other);
        EXCEPTION WHEN lock_not_available THEN
            EXIT;  -- busy: the next purge tries again
        END;
        -- the emptied partition takes the writers if the current one holds anything
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_cur) INTO v_keep;
        EXIT WHEN NOT v_keep;
        UPDATE pgshadow.tracked SET gen = 1 - gen WHERE tbl = p_tbl RETURNING * INTO v_tr;
        PERFORM pgshadow._replace_capture(v_tr);
    END LOOP;
END
$$;

-- Bounds what a subscription that does not ship (a target down for good,
-- one nobody exports to any more) makes the source keep: one whose oldest
-- unshipped change of table p_tr is older than p_limit stops holding rows
-- back. Its watermark moves to now and it needs a full copy (needs_copy),
-- which its next export makes before any batch, as after a deferred initial
-- copy: push, async and file targets alike. Nothing is lost: the copy reads
-- after the new watermark, so it holds every change the dropped rows stood
-- for, and what commits later ships as usual. The other subscriptions of the
-- table are not touched. Called only by _purge (under its checks), never on
-- the writers' path.
-- The age is the time of the first shadow row the watermark does not see,
-- found by one probe of the shadow_xid index in xid order: its cost does not
-- grow with the backlog (a count of the keys would read all of it, on every
-- purge), and it is what a DBA can weigh against disk space (backlog = write
-- rate x age) and against the longest outage a target should survive without
-- a full copy.
-- A subscription already being exported (its row locked) is left to that
-- export; one already waiting for a copy only has its watermark moved again.
-- Tables of a multi-master mesh are left out: a full copy to a peer would
-- overwrite the peer's own unshipped changes.
CREATE FUNCTION pgshadow._drop_backlogs(p_tr pgshadow.tracked, p_limit interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub    pgshadow.subscription;
    v_oldest timestamptz;
    v_age    interval;
    v_reason text;
BEGIN
    IF p_tr.versions IS NOT NULL THEN
        RETURN;
    END IF;
    FOR v_sub IN SELECT * FROM pgshadow.subscription s
                  WHERE s.tbl = p_tr.tbl AND s.mode <> 'sync' ORDER BY s.id LOOP
        EXECUTE format('SELECT shadow_at FROM pgshadow.%I WHERE %s ORDER BY shadow_xid LIMIT 1',
                       p_tr.shadow, pgshadow._unshipped_where('$1'))
           INTO v_oldest USING v_sub.snapshot;
        v_age := clock_timestamp() - v_oldest;
        CONTINUE WHEN v_oldest IS NULL OR v_age <= p_limit;
        v_age := date_trunc('second', v_age);
        -- not while an export holds it, nor if one moved its watermark meanwhile
        PERFORM FROM pgshadow.subscription s
          WHERE s.id = v_sub.id AND s.snapshot::text = v_sub.snapshot::text
          FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        v_reason := format('oldest unshipped change %s old, over pgshadow.max_backlog_age %s', v_age, p_limit);
        UPDATE pgshadow.subscription s
           SET snapshot = pgshadow._snapshot(), needs_copy = true,
               backlog_dropped_at = CASE WHEN v_sub.needs_copy THEN s.backlog_dropped_at ELSE clock_timestamp() END,
               backlog_dropped_reason = CASE WHEN v_sub.needs_copy THEN s.backlog_dropped_reason ELSE v_reason END
         WHERE s.id = v_sub.id;
        IF NOT v_sub.needs_copy THEN
            RAISE WARNING 'pgshadow: target "%" has not taken the changes of % for %: its backlog is dropped, and its next export copies the table',
                v_sub.target, v_sub.tbl, v_age
                USING DETAIL = v_reason || '; the other subscriptions of the table are not affected.',
                      HINT = 'Export to the target when it is back (shadow_export, or pgshadow export for a file target); raise pgshadow.max_backlog_age to keep longer backlogs.';
        END IF;
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION pgshadow._drop_backlogs(pgshadow.tracked, interval) FROM PUBLIC;

-- The subscription of a table to a target, with a clear error if none.
CREATE FUNCTION pgshadow._subscription(p_target text, p_tbl regclass) RETURNS pgshadow.subscription
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v pgshadow.subscription;
BEGIN
    SELECT * INTO v FROM pgshadow.subscription WHERE target = p_target AND tbl = p_tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: table % is not subscribed to target "%"', p_tbl, p_target
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN v;
END
$$;

CREATE FUNCTION shadow_subscribe(
    target       text,
    tbl          regclass,
    dest         text DEFAULT NULL,
    columns      text[] DEFAULT NULL,
    row_filter   text DEFAULT NULL,
    initial_copy boolean DEFAULT true,
    mode         text DEFAULT 'batch',
    on_conflict  text DEFAULT 'source_wins')
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_target  pgshadow.target;
    v_tr      pgshadow.tracked;
    v_parts   text[];
    v_schema  name;
    v_table   name;
    v_cols    name[];
    v_sub     pgshadow.subscription;
    v_old     pgshadow.subscription;
    v_copy    record;
    v_defer   boolean;
    v_filter  text;
BEGIN
    PERFORM pgshadow._check_owner(tbl, current_user);
    SELECT * INTO v_target FROM pgshadow.target t WHERE t.name = shadow_subscribe.target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist', shadow_subscribe.target
            USING ERRCODE = 'undefined_object', HINT = 'Create it with shadow_add_target(target, server).';
    END IF;
    IF mode NOT IN ('batch', 'async', 'sync') THEN
        RAISE EXCEPTION 'pgshadow: invalid mode % for % (use batch, async or sync)', quote_literal(mode), tbl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF on_conflict NOT IN ('source_wins', 'target_wins', 'latest', 'error') THEN
        RAISE EXCEPTION 'pgshadow: invalid on_conflict % for % (use source_wins, target_wins, latest or error)',
            quote_literal(on_conflict), tbl USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- capture first: the watermark taken below must follow the triggers
    PERFORM pgshadow._track(tbl);
    SELECT * INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = shadow_subscribe.tbl;

    IF dest IS NULL THEN
        SELECT n.nspname, c.relname INTO v_schema, v_table
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    ELSE
        BEGIN
            v_parts := parse_ident(dest);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'pgshadow: invalid dest % for %: %', quote_literal(dest), tbl, SQLERRM
                USING ERRCODE = 'invalid_name';
        END;
        IF cardinality(v_parts) = 1 THEN
            SELECT n.nspname INTO v_schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.oid = tbl;
            v_table := v_parts[1];
        ELSIF cardinality(v_parts) = 2 THEN
            v_schema := v_parts[1];
            v_table := v_parts[2];
        ELSE
            RAISE EXCEPTION 'pgshadow: invalid dest % for %: use table or schema.table', quote_literal(dest), tbl
                USING ERRCODE = 'invalid_name';
        END IF;
    END IF;

    -- no list: all columns, also those the table gains later (NULL here)
    v_cols := CASE WHEN columns IS NOT NULL THEN pgshadow._columns(tbl, columns, v_tr.key_cols) END;

    -- parsed, never executed as given: the canonical form is what is stored and run
    v_filter := pgshadow._filter(tbl, row_filter);

    SELECT * INTO v_old FROM pgshadow.subscription s
     WHERE s.target = shadow_subscribe.target AND s.tbl = shadow_subscribe.tbl;
    IF FOUND THEN
        IF (v_old.dest_schema, v_old.dest_table, CASE WHEN NOT v_old.all_columns THEN v_old.columns END,
            v_old.row_filter, v_old.mode, v_old.on_conflict)
           IS NOT DISTINCT FROM (v_schema, v_table, v_cols, v_filter, mode, on_conflict) THEN
            RETURN 0;  -- idempotent
        END IF;
        RAISE EXCEPTION 'pgshadow: % is already subscribed to target "%" with other settings', tbl, shadow_subscribe.target
            USING ERRCODE = 'duplicate_object',
                  HINT = 'shadow_unsubscribe() first; the target then needs the initial copy again.';
    END IF;

    -- Creating the capture triggers locked the table against writers until
    -- this transaction ends; a copy now would keep them waiting for all of
    -- it. Then the first export copies instead, in a transaction of its own.
    -- A consistent target copies with its next export too: at the snapshot
    -- its other tables ship at, so the copy agrees with them.
    v_defer := initial_copy AND v_target.server IS NOT NULL
               AND ((v_target.consistent AND mode <> 'sync') OR pgshadow._blocks_writers(tbl));
    v_sub := pgshadow._add_subscription(shadow_subscribe.target, tbl, v_schema, v_table, v_cols, v_filter,
                                        mode, on_conflict, initial_copy AND (v_target.server IS NULL OR v_defer));
    IF mode = 'sync' THEN
        IF v_target.server IS NULL THEN
            RAISE EXCEPTION 'pgshadow: target "%" is a file target; sync mode needs a foreign server', v_target.name
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM pgshadow._sync_triggers(tbl, true);
    END IF;
    IF on_conflict <> 'source_wins' AND v_target.server IS NOT NULL AND (v_defer OR NOT initial_copy) THEN
        -- no copy connects now: ask the target whether it can honour the
        -- policy (it records which node it is, too)
        PERFORM pgshadow._connect(v_target.name);
        PERFORM pgshadow._disconnect();
        PERFORM pgshadow._check_policy(tbl, v_target.name, on_conflict);
    END IF;
    IF v_defer THEN
        RAISE NOTICE 'pgshadow: % is subscribed to target "%"; its rows are copied by the next shadow_export', tbl, v_target.name
            USING DETAIL = CASE WHEN v_target.consistent AND mode <> 'sync'
                                THEN 'The target is exported consistently: the copy is made at the snapshot its other tables ship at.'
                                ELSE 'Tracking started in this transaction, which holds a lock that keeps writers of the table waiting until it ends; copying now would make them wait for the whole copy.' END,
                  HINT = CASE WHEN v_target.consistent AND mode <> 'sync'
                              THEN 'Run shadow_export() in a REPEATABLE READ transaction, or pgshadow export.'
                              ELSE 'Run shadow_track() in a transaction of its own first to copy at subscribe.' END;
    ELSIF initial_copy AND v_target.server IS NOT NULL THEN
        -- rows committed after the subscription's snapshot may be copied too;
        -- their keys are also in the next batch, which ships them again
        PERFORM pgshadow._connect(v_target.name);
        BEGIN
            v_copy := pgshadow._ship(v_sub, NULL, NULL, true, 100000);
        EXCEPTION WHEN OTHERS THEN
            PERFORM pgshadow._disconnect();
            RAISE;
        END;
        PERFORM pgshadow._disconnect();
        RETURN v_copy.upserts;
    END IF;
    RETURN 0;
END
$$;
COMMENT ON FUNCTION shadow_subscribe(text, regclass, text, text[], text, boolean, text, text) IS
    'pgshadow: ship a table to a target (initial copy unless initial_copy => false); returns rows copied';

CREATE FUNCTION shadow_unsubscribe(target text, tbl regclass) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dropped boolean;
BEGIN
    PERFORM pgshadow._check_owner(tbl, current_user);
    v_dropped := pgshadow._drop_subscription(target, tbl);
    IF NOT EXISTS (SELECT FROM pgshadow.subscription s WHERE s.tbl = shadow_unsubscribe.tbl AND s.mode = 'sync') THEN
        PERFORM pgshadow._sync_triggers(tbl, false);
    END IF;
    RETURN v_dropped;
END
$$;
COMMENT ON FUNCTION shadow_unsubscribe(text, regclass) IS
    'pgshadow: stop shipping a table to a target; returns false if it was not subscribed';

-- Ships every pending batch of one subscription over the open target
-- connection. Each batch is one remote transaction; the watermark moves only
-- after its batch committed on the target, so a failure resends, never loses.
-- A backlog over p_batch_size is cut at a transaction boundary into several
-- batches, each with a snapshot of its own (pgshadow._snapshot_between).
CREATE FUNCTION pgshadow._export_sub(p_id bigint, p_batch_size integer,
    OUT tbl regclass, OUT dest text, OUT batches integer, OUT keys bigint, OUT upserts bigint,
    OUT deletes bigint, OUT truncated boolean)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub     pgshadow.subscription := pgshadow._lock_subscription(p_id);
    v_tr      pgshadow.tracked;
    v_new     pg_snapshot;
    v_to      pg_snapshot;
    v_pending bigint;
    v_bound   xid8;
    v_first   boolean;
    v_r       record;
BEGIN
    SELECT * INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = v_sub.tbl;
    tbl := v_sub.tbl;
    dest := format('%I.%I', v_sub.dest_schema, v_sub.dest_table);
    batches := 0; keys := 0; upserts := 0; deletes := 0; truncated := false;
    IF NOT pgshadow._acts_for(pgshadow._caller(), v_sub.tbl) THEN
        PERFORM pgshadow._check_export_login(v_sub);
    END IF;
    -- columns added or dropped since the last export (a new one the target
    -- lacks stops the table here, its changes pending)
    v_sub := pgshadow._current_columns(v_sub, true);
    IF v_sub.needs_copy THEN
        -- the initial copy deferred by shadow_subscribe: as a resync, the
        -- watermark is taken before the copy reads, so what commits later
        -- ships again with the next batch
        v_new := pgshadow._snapshot();
        v_r := pgshadow._ship(v_sub, NULL, NULL, true, p_batch_size);
        PERFORM pgshadow._advance(p_id, v_new, v_r.upserts, 1);
        v_sub.snapshot := v_new;
        batches := 1; keys := v_r.upserts; upserts := v_r.upserts; truncated := true;
    END IF;
    LOOP
        v_new := pgshadow._snapshot();
        -- the pending changes and, in the same pass, the transaction where
        -- they pass the cap (and whether it is the first one). cum grows with
        -- every transaction, so exactly one has cum > cap >= cum - n; taking it
        -- with array_agg needs no min(xid8), which PostgreSQL 13 and 14 lack.
        EXECUTE format('SELECT coalesce(sum(n), 0)::bigint, (array_agg(x) FILTER (WHERE cum > $3 AND cum - n <= $3))[1],'
                       ' min(rn) FILTER (WHERE cum > $3) = 1'
                       ' FROM (SELECT shadow_xid AS x, count(*) AS n, sum(count(*)) OVER (ORDER BY shadow_xid) AS cum,'
                       ' row_number() OVER (ORDER BY shadow_xid) AS rn'
                       ' FROM pgshadow.%I WHERE %s GROUP BY shadow_xid) s',
                       v_tr.shadow, pgshadow._pending_where('$1', '$2'))
           INTO v_pending, v_bound, v_first USING v_sub.snapshot, v_new, p_batch_size;
        IF v_pending = 0 THEN
            -- nothing to ship: still move the watermark so purges can proceed
            PERFORM pgshadow._advance(p_id, v_new, 0, 0);
            EXIT;
        END IF;
        v_to := v_new;
        -- A cut is not a real snapshot (a later xid may have committed first),
        -- so the target would pass through a state the source never had; that
        -- is harmless unless a unique constraint other than the key forbids it.
        -- Cutting also ships a key again in every part it changed in, so it is
        -- only done when the backlog's distinct keys, not just its changes,
        -- pass the cap: 100k keys changed 10 times each stay one net batch.
        -- A consistent export (one snapshot for all the target's tables) is
        -- never cut: its batch is everything up to that snapshot.
        IF v_pending > p_batch_size AND current_setting('pgshadow.consistent_batch', true) IS DISTINCT FROM 'on'
           AND NOT EXISTS (
               SELECT FROM pg_index i WHERE i.indrelid = v_sub.tbl
                  AND ((i.indisunique AND NOT i.indisprimary) OR i.indisexclusion)) THEN
            -- cut after the transaction that passes the cap; one larger
            -- transaction goes alone, chunked
            IF v_first THEN
                v_bound := (v_bound::text::numeric + 1)::text::xid8;
            END IF;
            -- a cut that leaves something for later, only if the distinct
            -- keys pass the cap too (counted last: it reads the whole backlog)
            IF v_bound < pg_snapshot_xmax(v_new) THEN
                EXECUTE format('SELECT count(*) FROM (SELECT DISTINCT %s FROM pgshadow.%I WHERE %s AND shadow_op <> ''T'') k',
                               (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
                               v_tr.shadow, pgshadow._pending_where('$1', '$2'))
                   INTO v_pending USING v_sub.snapshot, v_new;
                IF v_pending > p_batch_size THEN
                    v_to := pgshadow._snapshot_between(v_sub.snapshot, v_new, v_bound);
                END IF;
            END IF;
        END IF;
        v_r := pgshadow._ship(v_sub, v_sub.snapshot, v_to, false, p_batch_size);
        IF v_r.conflicts > 0 AND v_sub.on_conflict = 'error' THEN
            -- the target applied what did not conflict and logged the rest; the
            -- watermark stays until an operator resolves them
            RAISE EXCEPTION 'pgshadow: % conflict(s) shipping % to target "%" (on_conflict => error)',
                v_r.conflicts, v_sub.tbl, v_sub.target
                USING ERRCODE = 'serialization_failure',
                      HINT = 'See shadow_conflicts on the target; resolve the rows, or shadow_skip() one side.';
        END IF;
        PERFORM pgshadow._advance(p_id, v_to, v_r.keys, 1);
        v_sub.snapshot := v_to;
        batches := batches + 1;
        keys := keys + v_r.keys;
        upserts := upserts + v_r.upserts;
        deletes := deletes + v_r.deletes;
        truncated := truncated OR v_r.truncated;
        EXIT WHEN v_to::text = v_new::text;
    END LOOP;
END
$$;

-- Ships the subscriptions p_ids of a consistent target at ONE source
-- snapshot in ONE remote transaction, so the target only ever shows states
-- the source had (foreign keys between its tables hold, a reader never sees
-- a line without its order). The one snapshot is the calling transaction's:
-- under REPEATABLE READ every read sees it, and pgshadow._snapshot() (each
-- watermark) is it, so what each table ships is exactly its change up to
-- that moment. Under READ COMMITTED each statement has a snapshot of its own,
-- so the export refuses (pgshadow export and shadow_run open the right
-- transaction). The remote transaction defers the target's constraints
-- (SET CONSTRAINTS ALL DEFERRED): those declared DEFERRABLE hold at its
-- commit. All watermarks move together, after the remote COMMIT. A failure
-- of any table fails the whole export (nothing ships, nothing moves), naming
-- the table; the callers record it on every subscription of the target.
-- Purging is left to a READ COMMITTED transaction after the commit
-- (_purge does nothing under REPEATABLE READ).
CREATE FUNCTION pgshadow._export_consistent(p_target text, p_ids bigint[], p_batch_size integer)
RETURNS TABLE (tbl regclass, dest text, batches integer, keys bigint, upserts bigint, deletes bigint,
               truncated boolean, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id    bigint;
    v_sub   pgshadow.subscription;
    v_cur   regclass;
    v_own   xid8;
    v_wrote boolean;
    v_state text;
    v_msg   text;
    v_hint  text;
BEGIN
    IF current_setting('transaction_isolation') = 'read committed' THEN
        RAISE EXCEPTION 'pgshadow: target "%" is exported consistently (all its tables at one snapshot), which needs a REPEATABLE READ transaction', p_target
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM shadow_export(...); COMMIT; or use pgshadow export, CALL shadow_export_logged() or CALL shadow_run(), which do so.';
    END IF;
    -- every subscription locked first, in id order, before anything ships
    FOREACH v_id IN ARRAY p_ids LOOP
        v_sub := pgshadow._lock_subscription(v_id);
        -- callable directly: every batch goes over the one connection to p_target
        IF v_sub.target <> p_target OR v_sub.mode = 'sync' THEN
            RAISE EXCEPTION 'pgshadow: subscription % of % is not a batch or async subscription to target "%"', v_id, v_sub.tbl, p_target
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- the transaction reads its own uncommitted writes, which its
        -- watermark leaves pending: the target would get a state the source
        -- never committed
        v_own := pg_current_xact_id_if_assigned();
        IF v_own IS NOT NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE shadow_xid = $1)',
                           (SELECT t.shadow FROM pgshadow.tracked t WHERE t.tbl = v_sub.tbl))
               INTO v_wrote USING v_own;
            IF v_wrote THEN
                RAISE EXCEPTION 'pgshadow: target "%" is exported consistently, and this transaction wrote %, which it ships', p_target, v_sub.tbl
                    USING ERRCODE = 'invalid_transaction_state',
                          HINT = 'Export in a transaction of its own, after the writes committed.';
            END IF;
        END IF;
    END LOOP;
    PERFORM set_config('pgshadow.consistent_batch', 'on', true);
    PERFORM pgshadow._connect(p_target);
    BEGIN
        PERFORM pgshadow._remote_exec('pgshadow', p_target, pgshadow._remote_begin() || ' SET CONSTRAINTS ALL DEFERRED;');
        FOREACH v_id IN ARRAY p_ids LOOP
            v_cur := (SELECT s.tbl FROM pgshadow.subscription s WHERE s.id = v_id);
            SELECT * INTO tbl, dest, batches, keys, upserts, deletes, truncated
              FROM pgshadow._export_sub(v_id, p_batch_size);
            error := NULL;
            RETURN NEXT;
        END LOOP;
        v_cur := NULL;
        -- deferred constraints are checked here
        PERFORM pgshadow._remote_exec('pgshadow', p_target, 'COMMIT');
    EXCEPTION WHEN OTHERS THEN
        -- the subtransaction took every watermark move back with it
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
        PERFORM set_config('pgshadow.consistent_batch', '', true);
        PERFORM pgshadow._disconnect();  -- the target rolls its transaction back
        IF v_state = '23503' THEN
            v_hint := 'The target checks a foreign key before the batch is complete: declare it DEFERRABLE there (ALTER TABLE ... ALTER CONSTRAINT ... DEFERRABLE); a consistent export defers constraints to its commit.';
        END IF;
        v_msg := format('pgshadow: consistent export to target "%s" failed %s, nothing shipped: %s', p_target,
                        CASE WHEN v_cur IS NULL THEN 'at its commit' ELSE format('at table %s', v_cur) END, v_msg);
        IF coalesce(v_hint, '') = '' THEN
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = v_state;
        END IF;
        RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = v_state, HINT = v_hint;
    END;
    PERFORM set_config('pgshadow.consistent_batch', '', true);
    PERFORM pgshadow._disconnect();
END
$$;

-- Ships every pending batch of every (batch or async) subscription of a target.
-- A table that fails does not hold the others back: each is shipped in a
-- subtransaction of its own. Its row then carries the error (also kept in
-- shadow_status.last_error and shadow_errors, and raised as a WARNING) while
-- the other tables' watermarks move. The call fails only when every table
-- failed (a target that is down, say), and then nothing moves.
CREATE FUNCTION shadow_export(target text, batch_size integer DEFAULT 100000)
RETURNS TABLE (tbl regclass, dest text, batches integer, keys bigint, upserts bigint, deletes bigint,
               truncated boolean, error text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id      bigint;
    v_ids     bigint[];
    v_tables  regclass[] := '{}';
    v_errors  text[] := '{}';
    v_failed  bigint[] := '{}';
    v_states  text[] := '{}';
    v_n       integer := 0;
    v_i       integer;
    v_down    text;
    v_down_state text;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'pgshadow: batch_size must be a positive number of keys' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgshadow._gc();
    -- only the subscriptions the caller acts for: another role's subscription
    -- to the same target is that role's to ship, with its own rights (and a
    -- role with nothing to ship does not even connect)
    v_ids := ARRAY(SELECT s.id FROM pgshadow.subscription s
                    WHERE s.target = shadow_export.target AND s.mode <> 'sync'
                      AND pgshadow._may_export(pgshadow._caller(), s.tbl)
                    ORDER BY s.id);
    IF cardinality(v_ids) = 0 THEN
        IF NOT EXISTS (SELECT FROM pgshadow.target t WHERE t.name = shadow_export.target) THEN
            PERFORM pgshadow._connect(target);  -- raises its "does not exist"
        END IF;
        RETURN;
    END IF;
    IF (SELECT t.consistent FROM pgshadow.target t WHERE t.name = shadow_export.target) THEN
        RETURN QUERY SELECT * FROM pgshadow._export_consistent(target, v_ids, batch_size);
        RETURN;
    END IF;
    PERFORM pgshadow._connect(target);
    FOREACH v_id IN ARRAY v_ids
    LOOP
        v_n := v_n + 1;
        BEGIN
            SELECT * INTO tbl, dest, batches, keys, upserts, deletes, truncated
              FROM pgshadow._export_sub(v_id, batch_size);
            error := NULL;
            v_tables := v_tables || tbl;
            RETURN NEXT;
        EXCEPTION WHEN OTHERS THEN
            v_failed := v_failed || v_id;
            v_errors := v_errors || SQLERRM;
            v_states := v_states || SQLSTATE;
            -- the remote transaction may be left aborted: go on afresh with
            -- the tables left (if any). A target that cannot be reached now
            -- fails them with that reason, and this table keeps its own error.
            CONTINUE WHEN v_n = cardinality(v_ids);
            BEGIN
                PERFORM pgshadow._connect(target);
            EXCEPTION WHEN OTHERS THEN
                v_down := SQLERRM;
                v_down_state := SQLSTATE;
                EXIT;
            END;
        END;
    END LOOP;
    IF v_down IS NOT NULL THEN
        -- the caller's subscriptions not reached (never another role's)
        FOR v_id IN SELECT i FROM unnest(v_ids) i WHERE i > v_failed[cardinality(v_failed)] ORDER BY i
        LOOP
            v_n := v_n + 1;
            v_failed := v_failed || v_id;
            v_errors := v_errors || format('pgshadow: %s not shipped: %s',
                                           (SELECT s.tbl FROM pgshadow.subscription s WHERE s.id = v_id), v_down);
            v_states := v_states || v_down_state;
        END LOOP;
    END IF;
    PERFORM pgshadow._disconnect();
    IF cardinality(v_failed) > 0 AND cardinality(v_failed) = v_n THEN
        RAISE EXCEPTION '%', array_to_string(v_errors, E'\n')
            USING ERRCODE = CASE WHEN v_n = 1 THEN v_states[1] ELSE 'PS001' END;
    END IF;
    FOR v_i IN 1 .. cardinality(v_failed) LOOP
        PERFORM pgshadow._record_failure(v_failed[v_i], v_states[v_i], v_errors[v_i]);
        RAISE WARNING '%', v_errors[v_i];
        SELECT s.tbl, format('%I.%I', s.dest_schema, s.dest_table), 0, 0, 0, 0, false, v_errors[v_i]
          INTO tbl, dest, batches, keys, upserts, deletes, truncated, error
          FROM pgshadow.subscription s WHERE s.id = v_failed[v_i];
        RETURN NEXT;
    END LOOP;
    -- last, so the brief lock a TRUNCATE purge takes is held for the shortest time
    PERFORM pgshadow._purge(t) FROM unnest(v_tables) t;
END
$$;
COMMENT ON FUNCTION shadow_export(text, integer) IS
    'pgshadow: ship every pending change of every table subscribed to a target; one row per table';

-- Copies the whole table to the target again (push targets now; file targets
-- with their next export) and restarts the watermark from this moment: the
-- recovery after a target was restored, skipped or edited by hand.
CREATE FUNCTION shadow_resync(target text, tbl regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub  pgshadow.subscription := pgshadow._subscription(target, tbl);
    v_snap pg_snapshot;
    v_r    record;
BEGIN
    -- not for a role that may only export (shadow_grant_export)
    PERFORM pgshadow._check_acts_for(tbl, pgshadow._caller());
    v_sub := pgshadow._lock_subscription(v_sub.id);
    -- taken before the copy reads: changes committed after it ship again later
    v_snap := pgshadow._snapshot();
    IF (SELECT t.server IS NULL OR (t.consistent AND v_sub.mode <> 'sync')
          FROM pgshadow.target t WHERE t.name = shadow_resync.target) THEN
        -- a file target, or a consistent one: the copy goes with the next
        -- export (for a consistent target, at the snapshot of its other
        -- tables, so the target never mixes two moments of the source)
        PERFORM pgshadow._reset(v_sub.id, v_snap, true);
        IF (SELECT t.server IS NOT NULL FROM pgshadow.target t WHERE t.name = shadow_resync.target) THEN
            RAISE NOTICE 'pgshadow: % is copied to target "%" by its next shadow_export, at the snapshot its other tables ship at', tbl, target;
        END IF;
        RETURN 0;
    END IF;
    PERFORM pgshadow._connect(target);
    BEGIN
        v_sub := pgshadow._current_columns(v_sub, true);
        v_r := pgshadow._ship(v_sub, NULL, NULL, true, 100000);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pgshadow._disconnect();
        RAISE;
    END;
    PERFORM pgshadow._disconnect();
    PERFORM pgshadow._reset(v_sub.id, v_snap, false);
    RETURN v_r.upserts;
END
$$;
COMMENT ON FUNCTION shadow_resync(text, regclass) IS
    'pgshadow: copy a table to a target again and restart its watermark; returns rows copied';

CREATE FUNCTION pgshadow._reset(p_id bigint, p_snapshot pg_snapshot, p_needs_copy boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._check_acts_for((SELECT tbl FROM pgshadow.subscription WHERE id = p_id), pgshadow._caller());
    UPDATE pgshadow.subscription
       SET snapshot = p_snapshot, needs_copy = p_needs_copy, last_error = NULL, last_error_at = NULL
     WHERE id = p_id;
    DELETE FROM pgshadow.error WHERE sub_id = p_id;
END
$$;
