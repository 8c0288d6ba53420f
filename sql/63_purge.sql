-- Purge: empties the shadow partition every subscription has shipped, and
-- bounds the backlog a dead target holds (max_backlog_age).

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
-- Length: the decision to truncate is the safety argument of the shadow
-- table, kept in one place with its comments.
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
