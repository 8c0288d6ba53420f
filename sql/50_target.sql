-- Targets and subscriptions. A target is a foreign server (postgres_fdw or
-- dblink_fdw): its user mappings hold the credentials, pgshadow stores only
-- the server's name. A target without a server is shipped to by files
-- (pgshadow export / import).

CREATE FUNCTION pgshadow._add_target(p_target text, p_server text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_caller name := pgshadow._caller();
    v_fdw    name;
    v_old    pgshadow.target%ROWTYPE;
BEGIN
    IF p_target IS NULL OR p_target !~ '^[A-Za-z0-9_.-]{1,48}$' THEN
        RAISE EXCEPTION 'pgshadow: invalid target name %', coalesce(quote_literal(p_target), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use 1 to 48 letters, digits, "_", "." or "-".';
    END IF;
    IF p_server IS NOT NULL THEN
        SELECT w.fdwname INTO v_fdw
          FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
         WHERE s.srvname = p_server;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pgshadow: target "%": foreign server "%" does not exist', p_target, p_server
                USING ERRCODE = 'undefined_object',
                      HINT = 'CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw, and a USER MAPPING with the password.';
        END IF;
        IF v_fdw NOT IN ('postgres_fdw', 'dblink_fdw') THEN
            RAISE EXCEPTION 'pgshadow: target "%": foreign server "%" uses wrapper %, not postgres_fdw', p_target, p_server, v_fdw
                USING ERRCODE = 'wrong_object_type';
        END IF;
        IF NOT has_server_privilege(v_caller, p_server, 'USAGE') THEN
            RAISE EXCEPTION 'pgshadow: target "%": role % has no USAGE on foreign server "%"', p_target, v_caller, p_server
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    SELECT * INTO v_old FROM pgshadow.target WHERE name = p_target;
    IF FOUND THEN
        IF v_old.server IS NOT DISTINCT FROM p_server THEN
            RETURN;  -- idempotent
        END IF;
        RAISE EXCEPTION 'pgshadow: target "%" already exists with server %', p_target, coalesce(v_old.server, '(files)')
            USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO pgshadow.target (name, server, owner) VALUES (p_target, p_server, v_caller);
END
$$;

CREATE FUNCTION shadow_add_target(target text, server text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._add_target(target, server)
$$;
COMMENT ON FUNCTION shadow_add_target(text, text) IS
    'pgshadow: declare a target: a postgres_fdw foreign server (NULL for a file target)';

-- Sets how a target is exported; only its owner (or a member of her role)
-- may, since it changes how every role's export of the target behaves.
CREATE FUNCTION pgshadow._alter_target(p_target text, p_consistent boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_t pgshadow.target;
BEGIN
    SELECT * INTO v_t FROM pgshadow.target WHERE name = p_target FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist', p_target USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT pg_has_role(pgshadow._caller(), v_t.owner, 'MEMBER') THEN
        RAISE EXCEPTION 'pgshadow: target "%" belongs to role %; role % may not alter it', p_target, v_t.owner, pgshadow._caller()
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_consistent IS NULL THEN
        RAISE EXCEPTION 'pgshadow: target "%": consistent must be true or false', p_target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_consistent AND v_t.server IS NULL THEN
        -- pgshadow export already writes a file target's batch from one
        -- REPEATABLE READ transaction, and pgshadow import applies it in one
        RAISE EXCEPTION 'pgshadow: target "%" is a file target: consistent applies to push targets', p_target
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A file batch is written at one snapshot and imported in one transaction already.';
    END IF;
    UPDATE pgshadow.target SET consistent = p_consistent WHERE name = p_target;
END
$$;

CREATE FUNCTION shadow_alter_target(target text, consistent boolean) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._alter_target(target, consistent)
$$;
COMMENT ON FUNCTION shadow_alter_target(text, boolean) IS
    'pgshadow: consistent => true ships every table of the target at one snapshot in one remote transaction';

-- Records what node target p_target reaches (p_id NULL: no pgshadow node
-- id there), as a connection to it just answered. A change is announced:
-- a renamed node (same id) with a NOTICE, another node with a WARNING. Only
-- connections of the target's owner (or a member of her role) are recorded:
-- a mesh node finds a peer's pending changes by this, for every table, so no
-- other role may declare it; another role's answer serves its own call only.
-- A row another session is recording right now is left to it.
CREATE FUNCTION pgshadow._learn_peer(p_target text, p_id uuid, p_node text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_t pgshadow.target%ROWTYPE;
BEGIN
    SELECT * INTO v_t FROM pgshadow.target WHERE name = p_target;
    IF NOT FOUND OR NOT pg_has_role(pgshadow._caller(), v_t.owner, 'MEMBER') THEN
        RETURN false;
    END IF;
    IF v_t.peer_at IS NOT NULL AND v_t.peer_id IS NOT DISTINCT FROM p_id AND v_t.peer_node IS NOT DISTINCT FROM p_node THEN
        RETURN true;  -- known: no write (every export asks)
    END IF;
    SELECT * INTO v_t FROM pgshadow.target WHERE name = p_target FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_t.peer_at IS NOT NULL AND v_t.peer_id IS NOT NULL AND v_t.peer_id IS DISTINCT FROM p_id THEN
        RAISE WARNING 'pgshadow: target "%" now reaches %, not node "%" (id %) as before', p_target,
            CASE WHEN p_id IS NULL THEN 'a database without pgshadow node id' ELSE format('node "%s" (id %s)', p_node, p_id) END,
            v_t.peer_node, v_t.peer_id
            USING DETAIL = 'The node was moved, copied or restored (it then has a new id), or the foreign server points elsewhere. Recorded.';
    ELSIF v_t.peer_at IS NOT NULL AND v_t.peer_id IS NOT NULL AND v_t.peer_node IS DISTINCT FROM p_node THEN
        RAISE NOTICE 'pgshadow: target "%" reaches node "%" (id %), renamed from "%"', p_target, p_node, p_id, v_t.peer_node;
    END IF;
    UPDATE pgshadow.target SET peer_id = p_id, peer_node = p_node, peer_at = now() WHERE name = p_target;
    RETURN true;
END
$$;

CREATE FUNCTION shadow_learn_peer(target text, OUT node text, OUT node_id uuid)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_owner name;
BEGIN
    SELECT t.owner INTO v_owner FROM pgshadow.target t WHERE t.name = shadow_learn_peer.target;
    IF FOUND AND NOT pg_has_role(pgshadow._caller(), v_owner, 'MEMBER') THEN
        RAISE EXCEPTION 'pgshadow: only role % (the owner of target "%") records which node it reaches', v_owner, target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pgshadow._connect(target);   -- asks, and records; raises "does not exist"
    PERFORM pgshadow._disconnect();
    SELECT t.peer_node, t.peer_id INTO node, node_id FROM pgshadow.target t WHERE t.name = shadow_learn_peer.target;
END
$$;
COMMENT ON FUNCTION shadow_learn_peer(text) IS
    'pgshadow: ask a target which pgshadow node it reaches and record it (mesh peers are found by it); NULL: none';

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

-- Shipped columns of a table: the requested ones (validated) or all ordinary
-- ones; generated columns are computed by the target itself, never shipped.
CREATE FUNCTION pgshadow._columns(p_tbl regclass, p_columns text[], p_keys name[]) RETURNS name[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_all  name[];
    v_bad  text;
BEGIN
    SELECT array_agg(attname ORDER BY attnum) INTO v_all
      FROM pg_attribute
     WHERE attrelid = p_tbl AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
    IF p_columns IS NULL THEN
        RETURN v_all;
    END IF;
    SELECT string_agg(c, ', ') INTO v_bad FROM unnest(p_columns) c WHERE c::name <> ALL (v_all);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pgshadow: table % has no shippable column(s) %', p_tbl, v_bad
            USING ERRCODE = 'undefined_column',
                  HINT = 'Columns must exist and not be generated.';
    END IF;
    SELECT string_agg(k, ', ') INTO v_bad FROM unnest(p_keys) k WHERE k <> ALL (p_columns::name[]);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'pgshadow: the columns shipped from % must include its primary key (missing: %)', p_tbl, v_bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(DISTINCT c) FROM unnest(p_columns) c) <> cardinality(p_columns) THEN
        RAISE EXCEPTION 'pgshadow: column list for % names a column twice', p_tbl
            USING ERRCODE = 'duplicate_column';
    END IF;
    -- keep the table's column order: the target maps by name anyway
    RETURN ARRAY(SELECT a FROM unnest(v_all) a WHERE a = ANY (p_columns::name[]));
END
$$;
