-- Bidirectional replication. Two or more databases each track a table and
-- subscribe each other (every node to every other: a mesh). A change applied
-- by pgshadow carries pgshadow.origin and is not captured again, so nothing
-- ping-pongs and no node forwards another's changes.
--
-- Every key has a version: the time of the statement that last wrote it
-- and the node it was written on, compared as (time, node) so ties go to the
-- greater node name. A node's version of a key is the later of its own
-- changes (shadow rows; folded into the versions table when purged) and what
-- it applied from peers (the versions table). A peer ships each key with the
-- version of its current row.
--
-- A conflict is a key that arrives while the receiver still has a change of
-- it that it has not shipped to that peer. The sender's subscription declares
-- the policy: latest (apply only a newer version: a last-writer-wins register,
-- which converges in any mesh, and the one to use with more than two nodes;
-- it also drops stale rows that arrive late without a conflict), source_wins,
-- target_wins (two-node policies: in a larger mesh they depend on the order of
-- exchanges), error (keep the local row, log, fail that table's export until an
-- operator resolves it). Every conflict is logged with both versions of the row.
-- Crossing exchanges of one pair are serialized: a node refuses (retryably) a
-- peer's batch while it is itself exporting that table to the peer.
--
-- Peers are known by identity, not by name: a sender passes its node id
-- (pgshadow.node), and the receiver finds the target that reaches that node
-- by what each target learned over a connection (pgshadow.target.peer_id),
-- so targets may be named anything. See _peer_target.
--
-- Length: the peer apply (pgshadow.apply) and the conflict log and versions
-- it reads and writes are one concern.

CREATE TABLE pgshadow.conflict (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    tbl         regclass NOT NULL,
    key         jsonb NOT NULL,
    origin      text NOT NULL,        -- the node the incoming row came from
    node        text NOT NULL,        -- this node
    policy      text NOT NULL,
    resolution  text NOT NULL CHECK (resolution IN ('remote_applied', 'local_kept')),
    remote_at   timestamptz,
    local_at    timestamptz,
    remote_row  jsonb,                -- NULL: the peer deleted the row
    local_row   jsonb                 -- NULL: this node deleted the row
);
-- a batch retried under 'error' logs each conflict once
CREATE UNIQUE INDEX conflict_once ON pgshadow.conflict (tbl, key, origin, remote_at, local_at);
-- both versions of a row: visible only with SELECT on the table, and not to
-- a role whose row policies on it hide rows (it may not SELECT those)
GRANT SELECT ON pgshadow.conflict TO PUBLIC;
ALTER TABLE pgshadow.conflict ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON pgshadow.conflict FOR SELECT
    USING (pg_catalog.has_table_privilege(tbl, 'SELECT') AND NOT pg_catalog.row_security_active(tbl));

CREATE VIEW shadow_conflicts WITH (security_barrier) AS
SELECT id, at, tbl AS "table", key, origin, node, policy, resolution, remote_at, local_at, remote_row, local_row
  FROM pgshadow.conflict
 WHERE pg_catalog.has_table_privilege(tbl, 'SELECT') AND NOT pg_catalog.row_security_active(tbl);
COMMENT ON VIEW shadow_conflicts IS 'pgshadow: every conflict a peer''s batch met here, with both versions of the row (tables the viewer may SELECT)';
GRANT SELECT ON shadow_conflicts TO PUBLIC;

CREATE FUNCTION pgshadow._log_conflict(p_tbl regclass, p_key jsonb, p_origin text, p_policy text, p_resolution text,
                                       p_remote_at timestamptz, p_local_at timestamptz, p_remote_row jsonb, p_local_row jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, pgshadow._caller());
    INSERT INTO pgshadow.conflict (tbl, key, origin, node, policy, resolution, remote_at, local_at, remote_row, local_row)
    VALUES (p_tbl, p_key, p_origin, pgshadow._node(), p_policy, p_resolution, p_remote_at, p_local_at, p_remote_row, p_local_row)
    ON CONFLICT DO NOTHING;
END
$$;

-- The versions table of a tracked table, created when first needed.
CREATE FUNCTION pgshadow._versions(p_tbl regclass) RETURNS name
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tr pgshadow.tracked;
    v_name name;
BEGIN
    PERFORM pgshadow._check_owner(p_tbl, pgshadow._caller());
    SELECT * INTO v_tr FROM pgshadow.tracked WHERE tbl = p_tbl FOR UPDATE;
    IF v_tr.versions IS NOT NULL THEN
        RETURN v_tr.versions;
    END IF;
    v_name := left(v_tr.shadow, 59) || '_ver';
    EXECUTE format('CREATE TABLE pgshadow.%I (%s, at timestamptz NOT NULL, node text COLLATE "C" NOT NULL, PRIMARY KEY (%s))',
                   v_name,
                   (SELECT string_agg(format('%I %s', c, t), ', ') FROM unnest(v_tr.key_cols, v_tr.key_types) AS u(c, t)),
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c));
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON pgshadow.%I TO %I', v_name,
                   (SELECT relowner::regrole::name FROM pg_class WHERE oid = p_tbl));
    UPDATE pgshadow.tracked SET versions = v_name WHERE tbl = p_tbl;
    RETURN v_name;
END
$$;

-- Refuses a peer's batch while this node is exporting the same table to that
-- peer (through target p_target, which holds its subscription row): crossing
-- exchanges would each see the other's change as a conflict and could swap
-- rows. The peer retries.
CREATE FUNCTION pgshadow._peer_gate(p_dest regclass, p_target text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._check_owner(p_dest, pgshadow._caller());
    PERFORM FROM pgshadow.subscription WHERE tbl = p_dest AND target = p_target FOR SHARE NOWAIT;
EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'pgshadow: % is exporting % to target "%" right now; retry', pgshadow._node(), p_dest, p_target
        USING ERRCODE = 'lock_not_available';
END
$$;

-- The target of this node whose subscription of p_tbl tells which of its
-- changes the origin has not been sent yet: the one that reaches the node
-- with id p_origin_id, else NULL (the origin is no peer of this table here:
-- nothing is pending for it). A target that never learned what it reaches,
-- or that learned another id under the origin's name (the origin moved or
-- was copied), is asked now (_learn); one that cannot be asked fails the
-- apply naming it, rather than missing conflicts. A sender without a node id
-- (before 0.2.0) is found as it was then: the target named after it.
CREATE FUNCTION pgshadow._peer_target(p_tbl regclass, p_origin text, p_origin_id uuid) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_t   record;
    v_id  text;
    v_hit text;
BEGIN
    IF p_origin_id IS NULL THEN
        RETURN (SELECT s.target FROM pgshadow.subscription s WHERE s.tbl = p_tbl AND s.target = p_origin);
    END IF;
    FOR v_t IN SELECT t.name, t.peer_id, t.peer_node, t.peer_at
                 FROM pgshadow.subscription s JOIN pgshadow.target t ON t.name = s.target
                WHERE s.tbl = p_tbl AND t.server IS NOT NULL ORDER BY t.name LOOP
        v_id := v_t.peer_id::text;
        IF v_t.peer_at IS NULL OR (v_t.peer_node = p_origin AND v_t.peer_id IS DISTINCT FROM p_origin_id) THEN
            BEGIN
                v_id := pgshadow._learn(v_t.name);
            EXCEPTION WHEN OTHERS THEN
                RAISE EXCEPTION 'pgshadow: % cannot tell whether target "%" reaches node "%", which sent changes of %: %',
                    pgshadow._node(), v_t.name, p_origin, p_tbl, SQLERRM
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = format('On %s, SELECT shadow_learn_peer(%L) as the target''s owner records what it reaches.',
                                        pgshadow._node(), v_t.name);
            END;
        END IF;
        IF v_id = p_origin_id::text THEN
            IF v_hit IS NOT NULL THEN
                RAISE EXCEPTION 'pgshadow: targets "%" and "%" of % both reach node "%"', v_hit, v_t.name, pgshadow._node(), p_origin
                    USING ERRCODE = 'duplicate_object', HINT = format('Subscribe %s to one of them only.', p_tbl);
            END IF;
            v_hit := v_t.name;
        END IF;
    END LOOP;
    RETURN v_hit;
END
$$;

-- A conflict policy other than source_wins needs pgshadow on the target (its
-- apply decides); without it the rows would be applied as under source_wins.
-- Called on an open connection to the target (_connect).
CREATE FUNCTION pgshadow._check_policy(p_tbl regclass, p_target text, p_policy text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_policy <> 'source_wins' AND NOT pgshadow._target_is_peer() THEN
        RAISE EXCEPTION 'pgshadow: cannot ship % to target "%" with on_conflict => %: the target does not run pgshadow, which detects conflicts there',
            p_tbl, p_target, p_policy
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install pgshadow on the target database, or subscribe with on_conflict => source_wins.';
    END IF;
END
$$;

-- Applies a peer's chunk here (called over dblink by the peer's export, inside
-- the transaction it opened with pgshadow.origin set). p_origin and
-- p_origin_id are the sender's node name and id; p_keys and p_rows are
-- 2-D text arrays: one row per key column / shipped column; p_at and p_nodes
-- the version of each key. Returns the number of conflicts met. Runs with the
-- rights of the role the peer's user mapping logs in as.
-- Length: one peer chunk is applied in steps that share its unpacked keys,
-- rows and versions: re-baseline after a move, read this node's versions,
-- decide each key's conflict by policy, delete, upsert, log conflicts and
-- remember the versions applied.
CREATE FUNCTION pgshadow.apply(p_origin text, p_dest regclass, p_policy text, p_keys text[], p_at timestamptz[],
                               p_nodes text[], p_columns name[], p_rows text[], p_origin_id uuid)
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tr      pgshadow.tracked;
    v_peer    text;      -- the target here that reaches the origin
    v_snap    pg_snapshot;
    v_ver     name;
    v_kcols   name[];
    v_ktypes  text[];
    v_ctypes  text[];
    v_klist   text;
    v_kin     text;      -- typed incoming keys with their versions
    v_rin     text;      -- incoming rows, as text
    v_match   text;
    v_kept    text[] := '{}';
    v_n       bigint := 0;
    v_c       record;
    v_remote  boolean;
    v_me      text := pgshadow._node();
BEGIN
    IF p_policy NOT IN ('source_wins', 'target_wins', 'latest', 'error') THEN
        RAISE EXCEPTION 'pgshadow: unknown conflict policy %', p_policy USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(a.attname ORDER BY k.ord), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
      INTO v_kcols, v_ktypes
      FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = p_dest AND i.indisprimary;
    IF v_kcols IS NULL THEN
        RAISE EXCEPTION 'pgshadow: cannot apply to %: it has no primary key', p_dest USING ERRCODE = 'invalid_table_definition';
    END IF;
    SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY u.i) INTO v_ctypes
      FROM unnest(p_columns) WITH ORDINALITY AS u(c, i)
      JOIN pg_attribute a ON a.attrelid = p_dest AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped;
    IF coalesce(cardinality(v_ctypes), 0) <> cardinality(p_columns) THEN
        RAISE EXCEPTION 'pgshadow: % lacks some of the columns %', p_dest, p_columns USING ERRCODE = 'undefined_column';
    END IF;

    v_klist := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_kcols) c);
    v_kin := format('SELECT %s, u.pgshadow_at, u.pgshadow_node FROM unnest(%s, $2, $6) AS u(%s, pgshadow_at, pgshadow_node)',
        (SELECT string_agg(format('u.%I::%s AS %1$I', c, t), ', ') FROM unnest(v_kcols, v_ktypes) AS x(c, t)),
        (SELECT string_agg(format('$1[%s:%s]', i, i), ', ') FROM generate_series(1, cardinality(v_kcols)) i),
        v_klist);
    v_rin := format('SELECT * FROM unnest(%s) AS r(%s)',
        (SELECT string_agg(format('$3[%s:%s]', i, i), ', ') FROM generate_series(1, cardinality(p_columns)) i),
        (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_columns) c));
    v_match := (SELECT string_agg(format('d.%1$I = k.%1$I', c), ' AND ') FROM unnest(v_kcols) c);

    SELECT t.* INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = p_dest;
    IF p_keys IS NOT NULL AND v_tr.tbl IS NOT NULL THEN
        v_peer := pgshadow._peer_target(p_dest, p_origin, p_origin_id);
        PERFORM pgshadow._peer_gate(p_dest, v_peer);
        v_ver := pgshadow._versions(p_dest);
        -- the watermark tells unshipped local changes: one of another xid
        -- history (this node was moved) is re-baselined first
        PERFORM pgshadow._check_history(p_dest);
        SELECT s.snapshot INTO v_snap FROM pgshadow.subscription s WHERE s.tbl = p_dest AND s.target = v_peer;
        -- every incoming key this node has a version of: its own changes
        -- (pending = not yet shipped to the origin) and what it applied before
        FOR v_c IN EXECUTE format(
            'WITH k AS (%1$s), r AS (%2$s),'
            ' l AS (SELECT %3$s, max(shadow_at) AS at,'
            '              bool_or($4 IS NOT NULL AND %11$s) AS pending'
            '         FROM pgshadow.%4$I WHERE shadow_op <> ''T'' AND (%3$s) IN (SELECT %3$s FROM k) GROUP BY %3$s)'
            ' SELECT to_jsonb(ARRAY[%5$s]) AS key, ROW(%6$s)::text AS ident,'
            '        k.pgshadow_at AS remote_at, k.pgshadow_node AS remote_node, l.at AS local_at, coalesce(l.pending, false) AS pending,'
            '        CASE WHEN v.at IS NULL OR (l.at IS NOT NULL AND (l.at, $7::text COLLATE "C") > (v.at, v.node)) THEN l.at ELSE v.at END AS cur_at,'
            '        CASE WHEN v.at IS NULL OR (l.at IS NOT NULL AND (l.at, $7::text COLLATE "C") > (v.at, v.node)) THEN $7 ELSE v.node END AS cur_node,'
            '        (SELECT to_jsonb(r) FROM r WHERE %7$s) AS remote_row,'
            '        (SELECT to_jsonb(d) FROM %8$s d WHERE %9$s) AS local_row'
            '   FROM k LEFT JOIN l USING (%3$s) LEFT JOIN pgshadow.%10$I v USING (%3$s)'
            '  WHERE l.at IS NOT NULL OR v.at IS NOT NULL',
            v_kin, v_rin, v_klist, v_tr.shadow,
            (SELECT string_agg(format('k.%I::text', c), ', ') FROM unnest(v_kcols) c),
            (SELECT string_agg(format('k.%I', c), ', ') FROM unnest(v_kcols) c),
            (SELECT string_agg(format('r.%1$I::%2$s = k.%1$I', c, t), ' AND ') FROM unnest(v_kcols, v_ktypes) AS x(c, t)),
            p_dest, v_match, v_ver, pgshadow._unshipped_where('$4'))
          USING p_keys, p_at, p_rows, v_snap, v_kept, p_nodes, v_me
        LOOP
            v_remote := CASE p_policy
                 WHEN 'latest' THEN (v_c.remote_at, v_c.remote_node COLLATE "C") > (v_c.cur_at, v_c.cur_node COLLATE "C")
                 WHEN 'source_wins' THEN true
                 ELSE NOT v_c.pending     -- target_wins, error: a pending local change stays
               END;
            IF v_remote THEN
                IF v_c.pending THEN
                    v_n := v_n + 1;
                    PERFORM pgshadow._log_conflict(p_dest, v_c.key, p_origin, p_policy, 'remote_applied',
                        v_c.remote_at, v_c.local_at, v_c.remote_row, v_c.local_row);
                END IF;
            ELSE
                v_kept := v_kept || v_c.ident;
                IF v_c.pending THEN
                    v_n := v_n + 1;
                    PERFORM pgshadow._log_conflict(p_dest, v_c.key, p_origin, p_policy, 'local_kept',
                        v_c.remote_at, v_c.local_at, v_c.remote_row, v_c.local_row);
                END IF;
            END IF;
        END LOOP;
        -- remember the version of everything applied
        EXECUTE format('INSERT INTO pgshadow.%1$I AS v (%2$s, at, node) SELECT %2$s, pgshadow_at, pgshadow_node FROM (%3$s) k'
                       ' WHERE NOT ROW(%4$s)::text = ANY ($5)'
                       ' ON CONFLICT (%2$s) DO UPDATE SET at = EXCLUDED.at, node = EXCLUDED.node'
                       ' WHERE (EXCLUDED.at, EXCLUDED.node) > (v.at, v.node)',
                       v_ver, v_klist, v_kin,
                       (SELECT string_agg(format('k.%I', c), ', ') FROM unnest(v_kcols) c))
          USING p_keys, p_at, p_rows, v_snap, v_kept, p_nodes;
    END IF;

    -- Keys without an incoming row are deletes; rows are upserted, not
    -- deleted and re-inserted, because this node's own writers may insert the
    -- same key while the batch applies (a conflict decided by the next exchange).
    IF p_keys IS NOT NULL THEN
        EXECUTE format('DELETE FROM %s d USING (%s) k WHERE %s AND NOT ROW(%s)::text = ANY ($5)'
                       ' AND NOT EXISTS (SELECT FROM (%s) r WHERE %s)',
                       p_dest, v_kin, v_match,
                       (SELECT string_agg(format('k.%I', c), ', ') FROM unnest(v_kcols) c),
                       v_rin,
                       (SELECT string_agg(format('r.%1$I::%2$s = k.%1$I', c, t), ' AND ') FROM unnest(v_kcols, v_ktypes) AS x(c, t)))
          USING p_keys, p_at, p_rows, v_snap, v_kept, p_nodes;
    END IF;
    IF p_rows IS NOT NULL THEN
        EXECUTE format('INSERT INTO %s AS d (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM (%s) r WHERE NOT ROW(%s)::text = ANY ($5)'
                       ' ON CONFLICT (%s) DO UPDATE SET %s',
                       p_dest,
                       (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_columns) c),
                       (SELECT string_agg(format('r.%I::%s', c, t), ', ') FROM unnest(p_columns, v_ctypes) AS x(c, t)),
                       v_rin,
                       (SELECT string_agg(format('r.%I::%s', c, t), ', ') FROM unnest(v_kcols, v_ktypes) AS x(c, t)),
                       v_klist,
                       coalesce((SELECT string_agg(format('%1$I = EXCLUDED.%1$I', c), ', ')
                                   FROM unnest(p_columns) c WHERE c <> ALL (v_kcols)),
                                format('%1$I = EXCLUDED.%1$I', v_kcols[1])))
          USING p_keys, p_at, p_rows, v_snap, v_kept, p_nodes;
    END IF;
    RETURN v_n;
END
$$;

-- The call of a sender before 0.2.0, which has no node id.
CREATE FUNCTION pgshadow.apply(p_origin text, p_dest regclass, p_policy text, p_keys text[], p_at timestamptz[],
                               p_nodes text[], p_columns name[], p_rows text[])
RETURNS bigint
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow.apply(p_origin, p_dest, p_policy, p_keys, p_at, p_nodes, p_columns, p_rows, NULL::uuid)
$$;

-- The version each key of a chunk ships with: the later of this node's own
-- latest change (p_at) and the version it applied from a peer.
CREATE FUNCTION pgshadow._key_versions(p_tbl regclass, p_keys text[], p_at timestamptz[],
                                       OUT at timestamptz[], OUT nodes text[])
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tr pgshadow.tracked;
    v_me text := pgshadow._node();
BEGIN
    SELECT * INTO v_tr FROM pgshadow.tracked WHERE tbl = p_tbl;
    IF v_tr.versions IS NULL THEN
        at := p_at;
        nodes := array_fill(v_me, ARRAY[cardinality(p_at)]);
        RETURN;
    END IF;
    EXECUTE format('SELECT array_agg(CASE WHEN v.at IS NULL OR (k.at, $3::text COLLATE "C") > (v.at, v.node) THEN k.at ELSE v.at END ORDER BY k.i),'
                   ' array_agg(CASE WHEN v.at IS NULL OR (k.at, $3::text COLLATE "C") > (v.at, v.node) THEN $3 ELSE v.node END ORDER BY k.i)'
                   ' FROM (SELECT %s, u.at, u.i FROM unnest(%s, $2) WITH ORDINALITY AS u(%s, at, i)) k'
                   ' LEFT JOIN pgshadow.%I v USING (%s)',
                   (SELECT string_agg(format('u.%I::%s AS %1$I', c, t), ', ') FROM unnest(v_tr.key_cols, v_tr.key_types) AS x(c, t)),
                   (SELECT string_agg(format('($1::text[])[%s:%s]', i, i), ', ') FROM generate_series(1, cardinality(v_tr.key_cols)) i),
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
                   v_tr.versions,
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c))
       INTO at, nodes
      USING (SELECT array_agg(a::text[]) FROM unnest(p_keys) a), p_at, v_me;
END
$$;

-- Calls pgshadow.apply() on the target for one chunk; returns its conflict count.
CREATE FUNCTION pgshadow._remote_apply(p_sub pgshadow.subscription, p_keys text[], p_at timestamptz[], p_rows text[])
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_n      bigint;
    v        record;
    v_detail text;
BEGIN
    v := pgshadow._key_versions(p_sub.tbl, p_keys, p_at);
    -- a peer with node ids is told which node this is (a peer before 0.2.0
    -- only by name)
    v_n := pgshadow._remote_value('pgshadow', p_sub.target, format('SELECT pgshadow.apply(%L, %L, %L, %L::text[], %L::timestamptz[], %L::text[], %L::name[], %L::text[]%s)',
                   pgshadow._node(), format('%I.%I', p_sub.dest_schema, p_sub.dest_table), p_sub.on_conflict,
                   (SELECT array_agg(a::text[]) FROM unnest(p_keys) a)::text, v.at, v.nodes, p_sub.columns,
                   (SELECT array_agg(a::text[]) FROM unnest(p_rows) a)::text,
                   CASE WHEN pgshadow._target_knows_ids() THEN format(', %L::uuid', pgshadow._node_id()) ELSE '' END))::bigint;
    RETURN v_n;
EXCEPTION WHEN OTHERS THEN
    -- the peer's DETAIL says why (a mapping role that does not own the
    -- table); it goes into the message, which is what an export reports
    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'pgshadow: applying % to %.% on target "%" failed: %',
        p_sub.tbl, quote_ident(p_sub.dest_schema), quote_ident(p_sub.dest_table), p_sub.target, SQLERRM
        || CASE WHEN v_detail <> '' THEN ' (' || v_detail || ')' ELSE '' END
        USING ERRCODE = SQLSTATE;
END
$$;
