-- Bidirectional replication. Two or more databases each track a table and
-- subscribe each other (every node to every other: a mesh). A change applied
-- by pgshadow carries pgshadow.origin and is not captured again, so nothing
-- ping-pongs and no node forwards another's changes.
--
-- A conflict is a key that arrives from a peer while this node still has a
-- change of it that it has not yet shipped to that peer. The sender's
-- subscription declares the policy: source_wins (the incoming row), target_wins
-- (the local row), latest (the later change by statement time, ties to the
-- greater node name), error (keep the local row, log, and fail the sender's
-- export until an operator resolves it). Every conflict is logged with both
-- versions. Whatever wins, the losing side's pending change still ships
-- afterwards carrying the *current* row, so after a quiet exchange both nodes
-- hold the same rows.

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
GRANT SELECT ON pgshadow.conflict TO PUBLIC;

-- #if extension
SELECT pg_catalog.pg_extension_config_dump('pgshadow.conflict', '');
SELECT pg_catalog.pg_extension_config_dump('pgshadow.conflict_id_seq', '');
-- #endif

CREATE VIEW shadow_conflicts AS
SELECT id, at, tbl AS "table", key, origin, node, policy, resolution, remote_at, local_at, remote_row, local_row
  FROM pgshadow.conflict;
COMMENT ON VIEW shadow_conflicts IS 'pgshadow: every conflict a peer''s batch met here, with both versions of the row';
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

-- Applies a peer's chunk here (called over dblink by the peer's export, inside
-- the transaction it opened with pgshadow.origin set). p_keys and p_rows are
-- 2-D text arrays: one row per key column / shipped column. Returns the number
-- of conflicts met. Runs with the peer's mapped role's rights.
CREATE FUNCTION pgshadow.apply(p_origin text, p_dest regclass, p_policy text, p_keys text[], p_at timestamptz[],
                               p_columns name[], p_rows text[])
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tr      pgshadow.tracked;
    v_snap    pg_snapshot;
    v_kcols   name[];
    v_ktypes  text[];
    v_ctypes  text[];
    v_kin     text;      -- typed incoming keys
    v_rin     text;      -- incoming rows, as text
    v_match   text;
    v_kept    text[] := '{}';
    v_n       bigint := 0;
    v_c       record;
    v_remote  boolean;
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

    v_kin := format('SELECT %s, u.at FROM unnest(%s, $2) AS u(%s, at)',
        (SELECT string_agg(format('u.%I::%s AS %1$I', c, t), ', ') FROM unnest(v_kcols, v_ktypes) AS x(c, t)),
        (SELECT string_agg(format('$1[%s:%s]', i, i), ', ') FROM generate_series(1, cardinality(v_kcols)) i),
        (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_kcols) c));
    v_rin := format('SELECT * FROM unnest(%s) AS r(%s)',
        (SELECT string_agg(format('$3[%s:%s]', i, i), ', ') FROM generate_series(1, cardinality(p_columns)) i),
        (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_columns) c));
    v_match := (SELECT string_agg(format('d.%1$I = k.%1$I', c), ' AND ') FROM unnest(v_kcols) c);

    -- conflicts: incoming keys this node changed and has not shipped to the origin yet
    SELECT t.* INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = p_dest;
    SELECT s.snapshot INTO v_snap FROM pgshadow.subscription s WHERE s.tbl = p_dest AND s.target = p_origin;
    IF p_keys IS NOT NULL AND v_tr.tbl IS NOT NULL AND v_snap IS NOT NULL THEN
        FOR v_c IN EXECUTE format(
            'WITH k AS (%1$s), r AS (%2$s),'
            ' l AS (SELECT %3$s, max(shadow_at) AS at FROM pgshadow.%4$I'
            '        WHERE shadow_xid >= pg_snapshot_xmin($4) AND NOT pg_visible_in_snapshot(shadow_xid, $4)'
            '          AND shadow_op <> ''T'' GROUP BY %3$s)'
            ' SELECT to_jsonb(ARRAY[%5$s]) AS key, ROW(%6$s)::text AS ident, k.at AS remote_at, l.at AS local_at,'
            '        (SELECT to_jsonb(r) FROM r WHERE %7$s) AS remote_row,'
            '        (SELECT to_jsonb(d) FROM %8$s d WHERE %9$s) AS local_row'
            '   FROM k JOIN l USING (%3$s)',
            v_kin, v_rin,
            (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_kcols) c),
            v_tr.shadow,
            (SELECT string_agg(format('k.%I::text', c), ', ') FROM unnest(v_kcols) c),
            (SELECT string_agg(format('k.%I', c), ', ') FROM unnest(v_kcols) c),
            (SELECT string_agg(format('r.%1$I::%2$s = k.%1$I', c, t), ' AND ') FROM unnest(v_kcols, v_ktypes) AS x(c, t)),
            p_dest, v_match)
          USING p_keys, p_at, p_rows, v_snap
        LOOP
            v_n := v_n + 1;
            v_remote := CASE p_policy
                WHEN 'source_wins' THEN true
                WHEN 'target_wins' THEN false
                WHEN 'error' THEN false
                ELSE v_c.remote_at > v_c.local_at OR (v_c.remote_at = v_c.local_at AND p_origin > pgshadow._node()) END;
            PERFORM pgshadow._log_conflict(p_dest, v_c.key, p_origin, p_policy,
                CASE WHEN v_remote THEN 'remote_applied' ELSE 'local_kept' END,
                v_c.remote_at, v_c.local_at, v_c.remote_row, v_c.local_row);
            IF NOT v_remote THEN
                v_kept := v_kept || v_c.ident;
            END IF;
        END LOOP;
    END IF;

    IF p_keys IS NOT NULL THEN
        EXECUTE format('DELETE FROM %s d USING (%s) k WHERE %s AND NOT ROW(%s)::text = ANY ($5)',
                       p_dest, v_kin, v_match,
                       (SELECT string_agg(format('k.%I', c), ', ') FROM unnest(v_kcols) c))
          USING p_keys, p_at, p_rows, v_snap, v_kept;
    END IF;
    IF p_rows IS NOT NULL THEN
        EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM (%s) r WHERE NOT ROW(%s)::text = ANY ($5)',
                       p_dest,
                       (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_columns) c),
                       (SELECT string_agg(format('r.%I::%s', c, t), ', ') FROM unnest(p_columns, v_ctypes) AS x(c, t)),
                       v_rin,
                       (SELECT string_agg(format('r.%I::%s', c, t), ', ') FROM unnest(v_kcols, v_ktypes) AS x(c, t)))
          USING p_keys, p_at, p_rows, v_snap, v_kept;
    END IF;
    RETURN v_n;
END
$$;

-- Calls pgshadow.apply() on the target for one chunk; returns its conflict count.
CREATE FUNCTION pgshadow._remote_apply(p_sub pgshadow.subscription, p_keys text[], p_at timestamptz[], p_rows text[])
RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_n bigint;
BEGIN
    EXECUTE format('SELECT n FROM %I.dblink(%L, $1) AS r(n bigint)', pgshadow._dblink(), 'pgshadow')
       INTO v_n
      USING format('SELECT pgshadow.apply(%L, %L, %L, %L::text[], %L::timestamptz[], %L::name[], %L::text[])',
                   pgshadow._node(), format('%I.%I', p_sub.dest_schema, p_sub.dest_table), p_sub.on_conflict,
                   (SELECT array_agg(a::text[]) FROM unnest(p_keys) a)::text, p_at, p_sub.columns,
                   (SELECT array_agg(a::text[]) FROM unnest(p_rows) a)::text);
    RETURN v_n;
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'pgshadow: applying % to %.% on target "%" failed: %',
        p_sub.tbl, quote_ident(p_sub.dest_schema), quote_ident(p_sub.dest_table), p_sub.target, SQLERRM
        USING ERRCODE = SQLSTATE;
END
$$;
