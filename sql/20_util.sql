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
