-- Helpers shared by the API: who is calling, ownership checks, names, dblink.

-- The role on whose behalf a SECURITY DEFINER function runs. Inside such a
-- function current_user is the definer, but the "role" setting still holds the
-- caller's SET ROLE (and session_user the login role), so a direct call of an
-- internal helper cannot borrow the definer's rights.
CREATE FUNCTION pgshadow._caller() RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN current_setting('role') = 'none' THEN session_user
                ELSE current_setting('role')::name END
$$;

-- Raises unless role p_who owns p_tbl or is a member of the owning role.
CREATE FUNCTION pgshadow._check_owner(p_tbl regclass, p_who name) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_owner name;
BEGIN
    SELECT c.relowner::regrole::name INTO v_owner FROM pg_class c WHERE c.oid = p_tbl;
    IF v_owner IS NULL THEN
        RAISE EXCEPTION 'pgshadow: table with oid % does not exist', p_tbl::oid;
    END IF;
    IF NOT pg_has_role(p_who, v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'pgshadow: permission denied for table %', p_tbl
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %I is not the owner of %s (owner: %I) nor a member of the owning role.',
                                  p_who, p_tbl, v_owner);
    END IF;
END
$$;

-- Whether role p_who acts for the subscriptions of table p_tbl: it owns the
-- table or is a member of the owning role. A subscription ships only with the
-- rights (and user mapping) of such a role. Unlike pg_has_role, a superuser
-- qualifies only by ownership or explicit membership, so a superuser's routine
-- export never lends its rights and mapping to other roles' subscriptions.
CREATE FUNCTION pgshadow._acts_for(p_who name, p_tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((
        SELECT CASE WHEN NOT r.rolsuper THEN pg_has_role(r.oid, c.relowner, 'USAGE')
                    ELSE r.oid = c.relowner OR EXISTS (
                        WITH RECURSIVE m(id) AS (
                            SELECT a.roleid FROM pg_auth_members a WHERE a.member = r.oid
                            UNION
                            SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.id)
                        SELECT FROM m WHERE m.id = c.relowner) END
          FROM pg_class c, pg_roles r
         WHERE c.oid = p_tbl AND r.rolname = p_who), false)
$$;

-- Raises unless p_who acts for p_tbl (see _acts_for).
CREATE FUNCTION pgshadow._check_acts_for(p_tbl regclass, p_who name) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, p_who);
    IF NOT pgshadow._acts_for(p_who, p_tbl) THEN
        RAISE EXCEPTION 'pgshadow: role % may not ship % with its own rights', p_who, p_tbl
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A subscription ships only with the rights of the table''s owner or of an explicit member of the owning role; a superuser is no exception.',
                  HINT = format('SET ROLE %I first, or GRANT %I TO %I.',
                                (SELECT c.relowner::regrole::name FROM pg_class c WHERE c.oid = p_tbl),
                                (SELECT c.relowner::regrole::name FROM pg_class c WHERE c.oid = p_tbl), p_who);
    END IF;
END
$$;

-- Whether the table's owner granted role p_who the right to export p_tbl
-- (shadow_grant_export) and p_who may still SELECT the table. It answers only
-- about the caller itself (the grants are not everyone's to list).
CREATE FUNCTION pgshadow._export_granted(p_who name, p_tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_who = pgshadow._caller()
       AND coalesce(has_table_privilege(p_who, p_tbl, 'SELECT'), false)
       AND EXISTS (SELECT FROM pgshadow.export_grant g JOIN pg_roles r ON r.oid = g.grantee
                    WHERE g.tbl = p_tbl AND r.rolname = p_who)
$$;

-- Whether role p_who may export the subscriptions of p_tbl (ship, purge,
-- record the outcome): it acts for the table (_acts_for), or the owner
-- granted it exports. Only export paths ask this; subscribing, resync, skip,
-- compare and untracking still need _acts_for.
CREATE FUNCTION pgshadow._may_export(p_who name, p_tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._acts_for(p_who, p_tbl) OR pgshadow._export_granted(p_who, p_tbl)
$$;

-- Raises unless p_who may export p_tbl (see _may_export).
CREATE FUNCTION pgshadow._check_may_export(p_tbl regclass, p_who name) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT pgshadow._export_granted(p_who, p_tbl) THEN
        PERFORM pgshadow._check_acts_for(p_tbl, p_who);
    END IF;
END
$$;

-- Whether this transaction holds a lock on p_tbl that keeps its writers
-- waiting (SHARE or stronger: CREATE TRIGGER takes SHARE ROW EXCLUSIVE).
CREATE FUNCTION pgshadow._blocks_writers(p_tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM pg_locks l
                    WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND l.relation = p_tbl AND l.pid = pg_backend_pid() AND l.granted
                      AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'))
$$;

-- The schema dblink is installed in (it is relocatable, so never assume public).
CREATE FUNCTION pgshadow._dblink() RETURNS name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v name;
BEGIN
    SELECT n.nspname INTO v FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'dblink';
    IF v IS NULL THEN
        RAISE EXCEPTION 'pgshadow: the dblink extension is not installed in this database'
            USING HINT = 'CREATE EXTENSION dblink; (or CREATE EXTENSION pgshadow CASCADE)';
    END IF;
    RETURN v;
END
$$;

-- The planner's row count of a table: of a partitioned one, the sum over its
-- leaves (its own pg_class row counts nothing). NULL when no leaf was ever
-- analyzed. The total a copy's progress is shown against, and the size a
-- batch is weighed against when choosing a join.
CREATE FUNCTION pgshadow._row_estimate(p_tbl regclass) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    -- (pg_partition_tree lists nothing for a table outside any tree)
    SELECT sum(c.reltuples) FILTER (WHERE c.reltuples >= 0)::bigint
      FROM pg_class c
     WHERE c.relkind <> 'p'
       AND (c.oid = p_tbl OR c.oid IN (SELECT p.relid FROM pg_partition_tree(p_tbl) p))
$$;

-- p_mid: the snapshot that sees what p_old sees plus the transactions below
-- p_bound that p_new sees. Lets a backlog drain in several batches, each with
-- a snapshot of its own, without trusting transaction order (see DESIGN.md).
CREATE FUNCTION pgshadow._snapshot_between(p_old pg_snapshot, p_new pg_snapshot, p_bound xid8)
RETURNS pg_snapshot
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH b AS (
        SELECT greatest(p_bound, pg_snapshot_xmax(p_old)) AS xmax
    ), xip AS (
        -- in progress for p_old and not (below the bound and visible for p_new)
        SELECT x FROM pg_snapshot_xip(p_old) x
         WHERE NOT (x < p_bound AND pg_visible_in_snapshot(x, p_new))
        UNION
        -- started after p_old, below the bound, still in progress for p_new
        SELECT x FROM pg_snapshot_xip(p_new) x
         WHERE x >= pg_snapshot_xmax(p_old) AND x < p_bound
    )
    SELECT format('%s:%s:%s',
                  -- ORDER BY/LIMIT, not min(): PostgreSQL 13 and 14 have no min(xid8)
                  coalesce((SELECT x FROM xip ORDER BY x LIMIT 1), b.xmax),
                  b.xmax,
                  coalesce((SELECT string_agg(x::text, ',' ORDER BY x) FROM xip), ''))::pg_snapshot
      FROM b
$$;

-- The snapshot a watermark is taken from. A transaction's own snapshot counts
-- its own xid as visible, so a transaction that wrote a tracked table and
-- then exports or subscribes would mark its own uncommitted changes shipped;
-- here its xid stays in progress, and its changes ship after it commits.
CREATE FUNCTION pgshadow._snapshot() RETURNS pg_snapshot
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN x IS NULL OR x >= pg_snapshot_xmax(s) THEN s
           ELSE format('%s:%s:%s', least(pg_snapshot_xmin(s), x), pg_snapshot_xmax(s),
                       (SELECT string_agg(v::text, ',' ORDER BY v)
                          FROM (SELECT pg_snapshot_xip(s) UNION SELECT x) u(v)))::pg_snapshot
           END
      FROM (SELECT pg_current_snapshot() AS s, pg_current_xact_id_if_assigned() AS x) c
$$;

-- The session settings values travel under, on both ends (push apply,
-- compare, sync, and the CLI's file mode, whose Go copy a test keeps equal):
-- they fix how dates, times, intervals, floats, bytea and money print, so the
-- text one server writes is read back as the same values by another whatever
-- either server's defaults or locale are. The functions that render values
-- get them as SET clauses from pgshadow._pin_settings (89_finish.sql).
CREATE FUNCTION pgshadow._settings() RETURNS TABLE (name text, setting text)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    VALUES ('DateStyle', 'ISO, YMD'), ('IntervalStyle', 'postgres'), ('TimeZone', 'UTC'),
           ('extra_float_digits', '3'), ('bytea_output', 'hex'), ('lc_monetary', 'C')
$$;

-- A duration setting of pgshadow (pgshadow.remote_timeout,
-- pgshadow.connect_timeout): '30s', '2min', '500ms', or a plain number of
-- milliseconds as for PostgreSQL's own timeouts; 0 means no limit.
CREATE FUNCTION pgshadow._duration(p_name text, p_default text) RETURNS interval
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_text text := coalesce(nullif(btrim(current_setting(p_name, true)), ''), p_default);
    v      interval;
BEGIN
    BEGIN
        v := CASE WHEN v_text ~ '^[0-9]+$' THEN v_text::bigint * interval '1 millisecond' ELSE v_text::interval END;
    EXCEPTION WHEN OTHERS THEN
        v := NULL;
    END;
    IF v IS NULL OR v < interval '0' THEN
        RAISE EXCEPTION 'pgshadow: invalid % %', p_name, quote_literal(v_text)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A duration such as 30s, 2min or 500ms, or a number of milliseconds; 0 for no limit.';
    END IF;
    RETURN v;
END
$$;

-- How long one remote statement (or one connection's answer) may take before
-- pgshadow gives the target up: pgshadow.remote_timeout, default 1min.
CREATE FUNCTION pgshadow._remote_timeout() RETURNS interval
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._duration('pgshadow.remote_timeout', '1min')
$$;

-- The libpq connection string pgshadow opens a target's foreign server with:
-- what dblink_connect(name, server) would use (the server's libpq options
-- and the user, password and sslpassword of the caller's user mapping, or of
-- the PUBLIC one), preceded by defaults that the server's own options
-- override: connect_timeout (pgshadow.connect_timeout, default 10s; libpq
-- would otherwise wait for ever on a target that accepts TCP but never
-- answers), TCP keepalives (a peer that vanished), and tcp_user_timeout at
-- pgshadow.remote_timeout (a send to a target that stopped reading fails
-- instead of blocking). Runs with the caller's rights: it reads only what
-- pg_user_mappings shows the caller. Where that hides the mapping (a PUBLIC
-- mapping of a server the caller does not own), it returns the server's name
-- and dblink builds the string itself, without the defaults.
CREATE FUNCTION pgshadow._connstr(p_server name) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_srv     record;
    v_um      record;
    v_connect interval := pgshadow._duration('pgshadow.connect_timeout', '10s');
    v_remote  interval := pgshadow._remote_timeout();
    v_str     text;
BEGIN
    SELECT s.oid, s.srvowner, s.srvoptions INTO v_srv FROM pg_foreign_server s WHERE s.srvname = p_server;
    IF NOT FOUND OR NOT has_server_privilege(v_srv.oid, 'USAGE') THEN
        RETURN p_server;  -- dblink raises its own clear error
    END IF;
    SELECT m.umuser, m.umoptions INTO v_um FROM pg_user_mappings m
     WHERE m.srvid = v_srv.oid
       AND (m.umuser = 0 OR m.umuser = (SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user))
     ORDER BY m.umuser = 0 LIMIT 1;
    IF NOT FOUND
       OR (v_um.umuser = 0 AND NOT pg_has_role(v_srv.srvowner, 'USAGE')
           AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)) THEN
        RETURN p_server;  -- no mapping (dblink says so), or one hidden from the caller
    END IF;
    -- libpq keeps the last value of a keyword: defaults first
    SELECT string_agg(format('%s=''%s''', k, replace(replace(v, '\', '\\'), '''', '\''')), ' ' ORDER BY o, n)
      INTO v_str
      FROM (
        SELECT 1, 1, 'connect_timeout', greatest(ceil(extract(epoch FROM v_connect)), 2)::bigint::text
         WHERE v_connect > interval '0'
        UNION ALL SELECT 1, 2, 'keepalives', '1'
        UNION ALL SELECT 1, 3, 'keepalives_idle', '15'
        UNION ALL SELECT 1, 4, 'keepalives_interval', '5'
        UNION ALL SELECT 1, 5, 'keepalives_count', '3'
        UNION ALL SELECT 1, 6, 'tcp_user_timeout', ceil(extract(epoch FROM v_remote) * 1000)::bigint::text
         WHERE v_remote > interval '0'
        -- as dblink: user and secrets only from the mapping, the rest only from the server
        UNION ALL
        SELECT 2, ord, split_part(opt, '=', 1), substr(opt, strpos(opt, '=') + 1)
          FROM unnest(v_srv.srvoptions) WITH ORDINALITY AS u(opt, ord)
         WHERE split_part(opt, '=', 1) IN (
               'host', 'hostaddr', 'port', 'dbname', 'passfile', 'channel_binding', 'connect_timeout',
               'client_encoding', 'options', 'application_name', 'fallback_application_name', 'keepalives',
               'keepalives_idle', 'keepalives_interval', 'keepalives_count', 'tcp_user_timeout', 'sslmode',
               'sslnegotiation', 'sslcompression', 'sslcert', 'sslkey', 'sslcertmode', 'sslrootcert', 'sslcrl',
               'sslcrldir', 'sslsni', 'requirepeer', 'require_auth', 'ssl_min_protocol_version',
               'ssl_max_protocol_version', 'min_protocol_version', 'max_protocol_version', 'gssencmode',
               'krbsrvname', 'gsslib', 'gssdelegation', 'service', 'target_session_attrs', 'load_balance_hosts')
        UNION ALL
        SELECT 3, ord, split_part(opt, '=', 1), substr(opt, strpos(opt, '=') + 1)
          FROM unnest(v_um.umoptions) WITH ORDINALITY AS u(opt, ord)
         WHERE split_part(opt, '=', 1) IN ('user', 'password', 'sslpassword')
      ) AS x(o, n, k, v);
    RETURN v_str;
END
$$;

-- Shadow rows a watermark has not shipped: their transaction is not visible
-- in p_old (SQL text over a snapshot expression). The lower bound lets the
-- shadow_xid index serve it. The one definition of "unshipped".
CREATE FUNCTION pgshadow._unshipped_where(p_old text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('shadow_xid >= pg_snapshot_xmin(%1$s) AND NOT pg_visible_in_snapshot(shadow_xid, %1$s)', p_old)
$$;

-- Rows whose transaction is visible in p_new but not in p_old: what an
-- export from watermark p_old to p_new ships (SQL text over two snapshot
-- expressions). The xid range lets the shadow_xid index serve it.
CREATE FUNCTION pgshadow._pending_where(p_old text, p_new text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('%3$s AND shadow_xid < pg_snapshot_xmax(%2$s) AND pg_visible_in_snapshot(shadow_xid, %2$s)',
                  p_old, p_new, pgshadow._unshipped_where(p_old))
$$;
