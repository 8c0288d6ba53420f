-- Targets. A target is a foreign server (postgres_fdw or dblink_fdw): its
-- user mappings hold the credentials, pgshadow stores only the server's
-- name. A target without a server is shipped to by files (pgshadow export /
-- import). Subscriptions, which tie tables to targets: sql/65_subscription.sql.

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
