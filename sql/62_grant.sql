-- Export grants: a table's owner lets another role (a scheduler) export the
-- table's subscriptions without owning the table, so the scheduler cannot
-- drop or alter it. What the grant covers and why it is safe: docs/DESIGN.md,
-- "Export grants".

-- Grants (p_on) or revokes the right; only the table's owner (or a member of
-- the owning role) may.
CREATE FUNCTION pgshadow._grant_export(p_tbl regclass, p_grantee regrole, p_on boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_caller name := pgshadow._caller();
    v_shadow name;
    v_found  boolean;
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, v_caller);
    SELECT t.shadow INTO v_shadow FROM pgshadow.tracked t WHERE t.tbl = p_tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: % is not tracked', p_tbl USING ERRCODE = 'undefined_object';
    END IF;
    IF p_grantee IS NULL OR NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = p_grantee) THEN
        RAISE EXCEPTION 'pgshadow: role % does not exist', p_grantee USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT p_on THEN
        DELETE FROM pgshadow.export_grant g WHERE g.tbl = p_tbl AND g.grantee = p_grantee;
        v_found := FOUND;
        -- the shadow table was granted at its first export; a role that acts
        -- for the table keeps what owning it gives
        IF NOT pgshadow._acts_for((SELECT r.rolname FROM pg_roles r WHERE r.oid = p_grantee), p_tbl) THEN
            EXECUTE format('REVOKE SELECT ON pgshadow.%I FROM %s', v_shadow, p_grantee);
        END IF;
        RETURN v_found;
    END IF;
    -- an export reads the rows with the exporter's own rights: all of them,
    -- or it would ship deletes for the rows its row policies hide
    IF NOT has_table_privilege(p_grantee, p_tbl, 'SELECT') THEN
        RAISE EXCEPTION 'pgshadow: role % may not SELECT %, so it cannot export it', p_grantee, p_tbl
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('GRANT SELECT ON %s TO %s first.', p_tbl, p_grantee);
    END IF;
    INSERT INTO pgshadow.export_grant (tbl, grantee, granted_by) VALUES (p_tbl, p_grantee, v_caller)
        ON CONFLICT (tbl, grantee) DO NOTHING;
    RETURN FOUND;
END
$$;

CREATE FUNCTION shadow_grant_export(tbl regclass, grantee regrole) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._grant_export(tbl, grantee, true)
$$;
COMMENT ON FUNCTION shadow_grant_export(regclass, regrole) IS
    'pgshadow: let a role export (and see the status of) a table''s subscriptions without owning the table';

CREATE FUNCTION shadow_revoke_export(tbl regclass, grantee regrole) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._grant_export(tbl, grantee, false)
$$;
COMMENT ON FUNCTION shadow_revoke_export(regclass, regrole) IS
    'pgshadow: take back shadow_grant_export; returns false if the role had no such grant';

-- Whether the table owner's user mapping for the subscription's foreign
-- server (her own, else PUBLIC's) logs in as target role p_login. Read as the
-- catalog's owner (pg_user_mapping is not readable by others) and answered
-- only to a role that may export the subscription; it never returns the
-- mapping's options.
CREATE FUNCTION pgshadow._owner_logs_in_as(p_id bigint, p_login name) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub   pgshadow.subscription;
    v_user  text;
    v_found boolean;
BEGIN
    SELECT * INTO v_sub FROM pgshadow.subscription s WHERE s.id = p_id;
    PERFORM pgshadow._check_may_export(v_sub.tbl, pgshadow._caller());
    BEGIN
        SELECT true, (SELECT substr(o, 6) FROM unnest(m.umoptions) o WHERE o LIKE 'user=%')
          INTO v_found, v_user
          FROM pgshadow.target t
          JOIN pg_foreign_server fs ON fs.srvname = t.server
          JOIN pg_class c ON c.oid = v_sub.tbl
          JOIN pg_user_mapping m ON m.umserver = fs.oid AND m.umuser IN (c.relowner, 0)
         WHERE t.name = v_sub.target
         ORDER BY m.umuser = 0
         LIMIT 1;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'pgshadow: export grants need pgshadow installed by a superuser (it reads the table owner''s user mapping)'
            USING ERRCODE = 'insufficient_privilege';
    END;
    RETURN coalesce(v_found AND v_user = p_login, false);
END
$$;

-- For an export by a role the owner granted exports: it reads the table with
-- its own rights, so row policies that hide rows from it would turn them
-- into deletes on the target. Refused instead.
CREATE FUNCTION pgshadow._check_grantee_reads_all(p_tbl regclass) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT pgshadow._acts_for(pgshadow._caller(), p_tbl) AND row_security_active(p_tbl) THEN
        RAISE EXCEPTION 'pgshadow: role % may not export %: row security hides rows of it from the role', pgshadow._caller(), p_tbl
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'An export must read every row; export as the table''s owner, or exempt the role from the table''s policies.';
    END IF;
END
$$;

-- For an export by a role the owner granted exports: the target connection
-- (the caller's own user mapping) must log in as the target role the
-- owner's user mapping names, so the batches are applied with exactly the
-- target rights the owner chose. The target says who the session is.
CREATE FUNCTION pgshadow._check_export_login(p_sub pgshadow.subscription) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_login name;
BEGIN
    PERFORM pgshadow._check_grantee_reads_all(p_sub.tbl);
    v_login := pgshadow._remote_value('pgshadow', p_sub.target, 'SELECT session_user::text');
    IF NOT pgshadow._owner_logs_in_as(p_sub.id, v_login) THEN
        RAISE EXCEPTION 'pgshadow: role % may export % to target "%" only as the target role its owner''s user mapping names; its own logs in as %',
            pgshadow._caller(), p_sub.tbl, p_sub.target, v_login
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Give the exporting role a user mapping for the same target user as the table owner''s (with its password).';
    END IF;
END
$$;
