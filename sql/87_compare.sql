-- shadow_compare: are source and target equal? Both sides hash their rows
-- range by range of the primary key (chunk_rows source rows a range), so a
-- large table never needs one giant query, and only the ranges that differ are
-- named. The row hash is order-independent (a sum of per-row hashes), so the
-- two servers need not sort alike. With repair => true each differing range is
-- re-shipped: deleted on the target and appended from the source in one remote
-- transaction (watermarks are untouched; later changes still ship as usual).

-- "(k1, k2) >= (lo...) AND (k1, k2) < (hi...)" over text[] bounds (NULL = open).
CREATE FUNCTION pgshadow._range_sql(p_tr pgshadow.tracked, p_alias text, p_lo text[], p_hi text[]) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT concat_ws(' AND ', 'true',
        CASE WHEN p_lo IS NOT NULL THEN format('(%s) >= (%s)', k, (
            SELECT string_agg(format('%L::%s', v, t), ', ' ORDER BY i)
              FROM unnest(p_lo, p_tr.key_types) WITH ORDINALITY AS u(v, t, i))) END,
        CASE WHEN p_hi IS NOT NULL THEN format('(%s) < (%s)', k, (
            SELECT string_agg(format('%L::%s', v, t), ', ' ORDER BY i)
              FROM unnest(p_hi, p_tr.key_types) WITH ORDINALITY AS u(v, t, i))) END)
      FROM (SELECT string_agg(format('%s%I', p_alias, c), ', ') AS k FROM unnest(p_tr.key_cols) c) x
$$;

-- count and order-independent hash of the shipped columns, cast to the
-- source's types (so int vs bigint on the target still compares equal)
CREATE FUNCTION pgshadow._hash_sql(p_cols name[], p_types text[], p_from text, p_where text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('SELECT count(*)::bigint, coalesce(sum((''x'' || substr(md5(ROW(%s)::text), 1, 15))::bit(60)::bigint::numeric), 0)::text'
                  ' FROM %s WHERE %s',
                  (SELECT string_agg(format('t.%I::%s::text', c, t), ', ') FROM unnest(p_cols, p_types) AS u(c, t)),
                  p_from, p_where)
$$;

CREATE FUNCTION shadow_compare(target text, tbl regclass, chunk_rows integer DEFAULT 10000, repair boolean DEFAULT false)
RETURNS TABLE (range_from text[], range_to text[], source_rows bigint, target_rows bigint, repaired boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp  -- and the fixed value settings (89_finish.sql)
AS $$
DECLARE
    v_sub    pgshadow.subscription := pgshadow._subscription(target, tbl);
    v_tr     pgshadow.tracked;
    v_types  text[];
    v_dbl    name;
    v_bounds text[];
    v_lo     text[];
    v_hi     text[];
    v_i      integer;
    v_lh     text;
    v_rh     text;
    v_where  text;
    v_rows   text[];
    v_n      bigint;
BEGIN
    IF chunk_rows IS NULL OR chunk_rows < 1 THEN
        RAISE EXCEPTION 'pgshadow: chunk_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- compare reads with the caller's mapping, and repair writes with it
    PERFORM pgshadow._check_acts_for(tbl, current_user);
    SELECT * INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = shadow_compare.tbl;
    v_sub.columns := pgshadow._shipped_columns(v_sub);
    v_types := pgshadow._column_types(v_sub);
    PERFORM pgshadow._connect(target);
    v_dbl := pgshadow._dblink();
    BEGIN
        PERFORM pgshadow._remote_exec('pgshadow', target,
            (SELECT string_agg(format('SET %I = %L; ', name, setting), '') FROM pgshadow._settings())
            || 'SET search_path = pg_catalog, pg_temp');
        -- every chunk_rows-th key of the source starts a range; the first range is open below
        -- and the last open above, so target rows outside the source's key span are counted too
        EXECUTE format('SELECT array_agg(b ORDER BY rn) FROM (SELECT ARRAY[%s]::text AS b, rn FROM'
                       ' (SELECT %s, row_number() OVER (ORDER BY %s) AS rn FROM %s t WHERE (%s)) s'
                       ' WHERE rn %% $1 = 1 AND rn > 1) x',
                       (SELECT string_agg(format('%I::text', c), ', ') FROM unnest(v_tr.key_cols) c),
                       (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(v_tr.key_cols) c),
                       (SELECT string_agg(format('t.%I', c), ', ') FROM unnest(v_tr.key_cols) c),
                       tbl, pgshadow._filter_sql(tbl, v_sub.row_filter))
           INTO v_bounds USING chunk_rows;
        v_bounds := coalesce(v_bounds, '{}');
        FOR v_i IN 0 .. cardinality(v_bounds) LOOP
            v_lo := CASE WHEN v_i = 0 THEN NULL ELSE v_bounds[v_i]::text[] END;
            v_hi := CASE WHEN v_i = cardinality(v_bounds) THEN NULL ELSE v_bounds[v_i + 1]::text[] END;
            EXECUTE pgshadow._hash_sql(v_sub.columns, v_types, format('%s t', tbl),
                        format('(%s) AND %s', pgshadow._filter_sql(tbl, v_sub.row_filter), pgshadow._range_sql(v_tr, 't.', v_lo, v_hi)))
               INTO source_rows, v_lh;
            BEGIN
                v_rows := pgshadow._remote_value('pgshadow', target,
                              format('SELECT ARRAY[n::text, h] FROM (%s) x(n, h)',
                                     pgshadow._hash_sql(v_sub.columns, v_types,
                                         format('%I.%I t', v_sub.dest_schema, v_sub.dest_table),
                                         pgshadow._range_sql(v_tr, 't.', v_lo, v_hi))))::text[];
            EXCEPTION WHEN OTHERS THEN
                -- the target's own error ("permission denied for table x")
                -- names neither the target nor the source table
                RAISE EXCEPTION 'pgshadow: comparing % with %.% on target "%" failed: %',
                    v_sub.tbl, quote_ident(v_sub.dest_schema), quote_ident(v_sub.dest_table), target, SQLERRM
                    USING ERRCODE = SQLSTATE;
            END;
            target_rows := v_rows[1]::bigint;
            v_rh := v_rows[2];
            CONTINUE WHEN source_rows = target_rows AND v_lh = v_rh;
            range_from := v_lo;
            range_to := v_hi;
            repaired := false;
            IF repair THEN
                v_where := pgshadow._range_sql(v_tr, 't.', v_lo, v_hi);
                EXECUTE format('SELECT count(*), ARRAY[%s] FROM %s t WHERE (%s) AND %s',
                               (SELECT string_agg(format('array_agg(t.%I::text)::text', c), ', ') FROM unnest(v_sub.columns) c),
                               tbl, pgshadow._filter_sql(tbl, v_sub.row_filter), v_where)
                   INTO v_n, v_rows;
                PERFORM pgshadow._remote(v_sub,
                    pgshadow._remote_begin()
                    || format(' DELETE FROM %I.%I t WHERE %s;', v_sub.dest_schema, v_sub.dest_table, v_where)
                    || pgshadow._apply_sql(v_sub, v_tr, v_types, NULL, CASE WHEN v_n > 0 THEN v_rows END)
                    || ' COMMIT;');
                repaired := true;
            END IF;
            RETURN NEXT;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        PERFORM pgshadow._disconnect();
        RAISE;
    END;
    PERFORM pgshadow._disconnect();
END
$$;
COMMENT ON FUNCTION shadow_compare(text, regclass, integer, boolean) IS
    'pgshadow: compare a table with its copy on a target by key range; repair => true re-ships the ranges that differ';
