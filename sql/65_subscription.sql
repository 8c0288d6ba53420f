-- Subscriptions: which table ships to which target, as what, with which
-- columns and rows; subscribe and unsubscribe.

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

-- Records a subscription with its first watermark. Called by shadow_subscribe
-- after the table is tracked, so every change not visible in the snapshot
-- taken here is captured. p_columns NULL: all columns, as the table has them
-- at each export (all_columns).
CREATE FUNCTION pgshadow._add_subscription(
    p_target text, p_tbl regclass, p_dest_schema name, p_dest_table name, p_columns name[],
    p_row_filter text, p_mode text, p_on_conflict text, p_needs_copy boolean)
RETURNS pgshadow.subscription
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_caller name := pgshadow._caller();
    v_sub    pgshadow.subscription;
    v_target pgshadow.target;
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, v_caller);
    -- The subscriber must be able to use the target itself: its batches will
    -- only ever be applied with its own (or its table owner's) user mapping,
    -- and nobody may aim them at a target it could not write to on its own.
    SELECT * INTO v_target FROM pgshadow.target WHERE name = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist', p_target
            USING ERRCODE = 'undefined_object', HINT = 'Create it with shadow_add_target(target, server).';
    ELSIF v_target.server IS NOT NULL THEN
        IF NOT has_server_privilege(v_caller, v_target.server, 'USAGE') THEN
            RAISE EXCEPTION 'pgshadow: cannot subscribe % to target "%": role % has no USAGE on its foreign server "%"',
                p_tbl, p_target, v_caller, v_target.server
                USING ERRCODE = 'insufficient_privilege',
                      HINT = format('GRANT USAGE ON FOREIGN SERVER %I TO %I, and CREATE USER MAPPING FOR %I SERVER %I.',
                                    v_target.server, v_caller, v_caller, v_target.server);
        END IF;
        IF NOT EXISTS (SELECT FROM pg_user_mappings m
                        WHERE m.srvname = v_target.server AND (m.umuser = 0 OR m.usename = v_caller)) THEN
            RAISE EXCEPTION 'pgshadow: cannot subscribe % to target "%": role % has no user mapping for foreign server "%"',
                p_tbl, p_target, v_caller, v_target.server
                USING ERRCODE = 'insufficient_privilege',
                      HINT = format('CREATE USER MAPPING FOR %I SERVER %I OPTIONS (user ..., password ...).',
                                    v_caller, v_target.server);
        END IF;
    ELSIF NOT pg_has_role(v_caller, v_target.owner, 'USAGE') THEN
        RAISE EXCEPTION 'pgshadow: cannot subscribe % to file target "%": it belongs to role %', p_tbl, p_target, v_target.owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Subscribe to a file target of your own (shadow_add_target(name, NULL)).';
    END IF;
    -- stamps the xid history this first watermark belongs to (and
    -- re-baselines the others if the database was moved)
    PERFORM pgshadow._check_history(p_tbl);
    INSERT INTO pgshadow.subscription
           (target, tbl, dest_schema, dest_table, columns, row_filter, mode, on_conflict,
            snapshot, needs_copy, created_by, all_columns)
    -- only a canonical filter is ever stored (it is pasted into every
    -- exporter's SQL), also when this helper is called directly
    VALUES (p_target, p_tbl, p_dest_schema, p_dest_table, coalesce(p_columns, pgshadow._columns(p_tbl, NULL, NULL)),
            pgshadow._filter(p_tbl, p_row_filter), p_mode, p_on_conflict,
            pgshadow._snapshot(), p_needs_copy, v_caller, p_columns IS NULL)
    RETURNING * INTO v_sub;
    PERFORM pgshadow._refresh_notify(p_tbl);
    RETURN v_sub;
END
$$;

CREATE FUNCTION pgshadow._drop_subscription(p_target text, p_tbl regclass) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, pgshadow._caller());
    DELETE FROM pgshadow.subscription WHERE target = p_target AND tbl = p_tbl;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pgshadow._refresh_notify(p_tbl);
    PERFORM pgshadow._purge(p_tbl);
    RETURN true;
END
$$;

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
