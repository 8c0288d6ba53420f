-- Opening and closing the connection to a target, with the session settings
-- of an apply, and learning which peer is at the other end.

-- Settings every apply on a target runs under: the fixed value settings
-- (pgshadow._settings), and statement_timeout at pgshadow.remote_timeout, so
-- a statement stuck on the target (a lock it waits for) ends there too.
-- pgshadow.origin marks the session as applying replicated changes (a custom
-- setting, so it works on targets that do not have pgshadow installed).
CREATE FUNCTION pgshadow._remote_begin() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'BEGIN; SET LOCAL search_path = pg_catalog, pg_temp;'
        || (SELECT string_agg(format(' SET LOCAL %I = %L;', name, setting), '') FROM pgshadow._settings())
        || format(' SET LOCAL statement_timeout = %L;',
                  (extract(epoch FROM pgshadow._remote_timeout()) * 1000)::bigint::text)
        || format(' SET LOCAL pgshadow.origin = %L;', pgshadow._node())
$$;

-- This database's name as an origin of changes.
CREATE FUNCTION pgshadow._node() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(current_setting('pgshadow.node_name', true), ''), current_database())
$$;

-- This database's identity as a node: what its peers know it by (a name may
-- change and two databases may share one).
CREATE FUNCTION pgshadow._node_id() RETURNS uuid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT id FROM pgshadow.node
$$;

-- The foreign server of push target p_target; an error naming it if there
-- is no such target, or it is a file target.
CREATE FUNCTION pgshadow._target_server(p_target text) RETURNS name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_server name;
BEGIN
    SELECT server INTO v_server FROM pgshadow.target WHERE name = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist', p_target
            USING ERRCODE = 'undefined_object', HINT = 'Create it with shadow_add_target(target, server).';
    ELSIF v_server IS NULL THEN
        RAISE EXCEPTION 'pgshadow: target "%" is a file target; ship to it with the pgshadow export command', p_target
            USING ERRCODE = 'wrong_object_type';
    END IF;
    RETURN v_server;
END
$$;

-- Opens the target connection (named "pgshadow") with the caller's user
-- mapping, within connect_timeout (see _connstr). A refusal keeps the
-- server's reason (dblink puts it in the DETAIL: a failed password, a
-- missing SCRAM secret) in the message, where shadow_status and the export's
-- summary show it, and in the DETAIL.
CREATE FUNCTION pgshadow._connect(p_target text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl    name := pgshadow._dblink();
    v_server name := pgshadow._target_server(p_target);
    v_peer   text;
    v_msg    text;
    v_detail text;
    v_hint   text;
BEGIN
    PERFORM pgshadow._disconnect();
    BEGIN
        EXECUTE format('SELECT %I.dblink_connect(%L, $1)', v_dbl, 'pgshadow') USING pgshadow._connstr(v_server);
        -- a target running pgshadow applies through pgshadow.apply()
        -- (conflict detection), and is told which node this is
        v_peer := pgshadow._peer_probe('pgshadow', p_target);
    EXCEPTION
    WHEN query_canceled THEN
        -- statement_timeout or a cancel while connecting (on PostgreSQL 16
        -- and later the only bound of a connect to a target that accepts
        -- TCP and never answers): still a cancel, naming the target
        PERFORM pgshadow._disconnect();
        RAISE EXCEPTION 'pgshadow: connecting to target "%" (foreign server "%") was cancelled: %', p_target, v_server, SQLERRM
            USING ERRCODE = 'query_canceled';
    WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        PERFORM pgshadow._disconnect();
        v_msg := format('pgshadow: cannot connect to target "%s" (foreign server "%s"): %s', p_target, v_server, v_msg)
              || CASE WHEN v_detail <> '' THEN ': ' || regexp_replace(btrim(v_detail, E' \n'), '\s*\n\s*', ' ', 'g') ELSE '' END;
        IF v_detail = '' AND v_hint = '' THEN
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = SQLSTATE;
        ELSIF v_hint = '' THEN
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = SQLSTATE, DETAIL = v_detail;
        ELSE
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = SQLSTATE, DETAIL = v_detail, HINT = v_hint;
        END IF;
    END;
    PERFORM set_config('pgshadow.peer', CASE WHEN v_peer = 'off' THEN 'off' ELSE 'on' END, true);
    PERFORM set_config('pgshadow.peer_id', CASE WHEN v_peer NOT IN ('on', 'off') THEN v_peer ELSE '' END, true);
END
$$;

-- What _connect learned of the target it opened, for the rest of the
-- transaction (the connection, named 'pgshadow', is the session's): whether
-- pgshadow runs there, so batches apply through its pgshadow.apply(), which
-- detects conflicts; and whether that knows node ids (0.2.0 and later).
-- _connect is the one writer of the two settings, these the one reader.
CREATE FUNCTION pgshadow._target_is_peer() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT current_setting('pgshadow.peer', true) IS NOT DISTINCT FROM 'on'
$$;

CREATE FUNCTION pgshadow._target_knows_ids() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(current_setting('pgshadow.peer_id', true), '') <> ''
$$;

-- Whether this call runs inside a consistent export (_export_consistent),
-- which holds one remote transaction open for all of a target's tables:
-- then a batch neither begins nor ends it, and is never cut. The setting
-- (written only by _export_consistent) does not count alone: a caller who
-- sets it herself must not get a batch applied without its BEGIN (the fixed
-- settings) and COMMIT, so the call stack must hold _export_consistent too.
CREATE FUNCTION pgshadow._in_consistent_export() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_stack text;
BEGIN
    IF current_setting('pgshadow.consistent_batch', true) IS DISTINCT FROM 'on' THEN
        RETURN false;
    END IF;
    GET DIAGNOSTICS v_stack = PG_CONTEXT;
    RETURN strpos(v_stack, 'pgshadow._export_consistent(') > 0;
END
$$;

-- Asks target p_target which node it is, over a connection of its own
-- ("pgshadow_peer", with the caller's user mapping, so it may run while a
-- "pgshadow" connection is open), records the answer (_learn_peer) and
-- returns it as _peer_probe does. A failure names the target.
CREATE FUNCTION pgshadow._learn(p_target text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl    name := pgshadow._dblink();
    v_server name := pgshadow._target_server(p_target);
    v_peer   text;
BEGIN
    BEGIN
        EXECUTE format('SELECT %I.dblink_connect(%L, $1)', v_dbl, 'pgshadow_peer') USING pgshadow._connstr(v_server);
        v_peer := pgshadow._peer_probe('pgshadow_peer', p_target);
        EXECUTE format('SELECT %I.dblink_disconnect(%L)', v_dbl, 'pgshadow_peer');
    EXCEPTION WHEN OTHERS THEN
        EXECUTE format('SELECT %I.dblink_disconnect(%L) FROM pg_catalog.unnest(%I.dblink_get_connections()) c WHERE c = %L',
                       v_dbl, 'pgshadow_peer', v_dbl, 'pgshadow_peer');
        RAISE EXCEPTION 'pgshadow: cannot ask target "%" (foreign server "%") which node it is: %', p_target, v_server, SQLERRM
            USING ERRCODE = SQLSTATE;
    END;
    RETURN v_peer;
END
$$;

-- What target p_target (open dblink connection p_conn) is: 'off' (no
-- pgshadow there), 'on' (a pgshadow without node ids: before 0.2.0) or its
-- node id; recorded with the target (_learn_peer).
CREATE FUNCTION pgshadow._peer_probe(p_conn text, p_target text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_kind text;
    v_who  text;
BEGIN
    v_kind := pgshadow._remote_value(p_conn, p_target,
        'SELECT CASE WHEN pg_catalog.to_regprocedure(''pgshadow._node_id()'') IS NOT NULL THEN ''id'''
        ' WHEN pg_catalog.to_regprocedure(''pgshadow.apply(text,regclass,text,text[],timestamptz[],text[],name[],text[])'') IS NOT NULL'
        ' THEN ''on'' ELSE ''off'' END');
    IF v_kind <> 'id' THEN
        PERFORM pgshadow._learn_peer(p_target, NULL, NULL);
        RETURN v_kind;
    END IF;
    -- the id first: it has a fixed length, the name may hold anything
    v_who := pgshadow._remote_value(p_conn, p_target, 'SELECT pgshadow._node_id()::text || '' '' || pgshadow._node()');
    PERFORM pgshadow._learn_peer(p_target, left(v_who, 36)::uuid, substr(v_who, 38));
    RETURN left(v_who, 36);
END
$$;

CREATE FUNCTION pgshadow._disconnect() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl  name := pgshadow._dblink();
    v_open boolean;
BEGIN
    EXECUTE format('SELECT %L = ANY (%I.dblink_get_connections())', 'pgshadow', v_dbl) INTO v_open;
    IF v_open THEN
        EXECUTE format('SELECT %I.dblink_disconnect(%L)', v_dbl, 'pgshadow');
    END IF;
END
$$;

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
