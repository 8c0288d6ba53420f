-- Row filters, continued: the entry points. _filter parses and checks a
-- filter when it is set; _filter_sql gives the stored canonical SQL to the
-- queries that read rows.

-- The canonical form of a row filter for table p_tbl, or an error naming the
-- table, what was refused and where. Idempotent on its own output, so it also
-- re-validates a stored filter. Constants are read and written under fixed
-- settings, so the stored text means the same in every session.
CREATE FUNCTION pgshadow._filter(p_tbl regclass, p_filter text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $$
DECLARE
    v_tok record;
    r     record;
    v     text;
BEGIN
    IF p_filter IS NULL THEN
        RETURN NULL;
    END IF;
    -- room for the canonical text of a long filter, which must parse again
    IF length(p_filter) > 100000 THEN
        PERFORM pgshadow._filter_error(p_tbl, 100001, 'a row filter is limited to 100000 characters');
    END IF;
    v_tok := pgshadow._filter_tokens(p_tbl, p_filter);
    IF v_tok.k[1] = 'end' THEN
        PERFORM pgshadow._filter_error(p_tbl, 1, 'the filter is empty');
    END IF;
    r := pgshadow._filter_expr(p_tbl, v_tok.k, v_tok.v, v_tok.pos, 1, 1, 0);
    IF v_tok.k[r.i] <> 'end' THEN
        PERFORM pgshadow._filter_error(p_tbl, v_tok.pos[r.i],
            format('unexpected %s', pgshadow._filter_tok(v_tok.k[r.i], v_tok.v[r.i])));
    END IF;
    v := '(' || pgshadow._filter_coerce(p_tbl, 1, r.sql, r.unk, 'boolean'::regtype) || ')';
    -- Running the canonical text cannot run a role's code: it holds only
    -- columns of built-in types, typed constants, and operators and
    -- functions of pg_catalog that are built in, so the planner's checks (and
    -- constant folding) here run nothing but the server's own code.
    BEGIN
        EXECUTE format('SELECT FROM %s t WHERE %s LIMIT 0', p_tbl, v);
    EXCEPTION WHEN OTHERS THEN
        PERFORM pgshadow._filter_error(p_tbl, 1, SQLERRM);
    END;
    RETURN v;
END
$$;

-- The filter text every read of p_tbl pastes ('true' for none). What is
-- stored is canonical, but the table may have changed since: a column the
-- filter reads whose type became a user-defined one would let
-- OPERATOR(pg_catalog.op) reach that type owner's casts. So the columns the
-- canonical text names (always as t.<identifier>) are checked here, cheaply,
-- each time the filter is pasted.
CREATE FUNCTION pgshadow._filter_sql(p_tbl regclass, p_filter text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    IF p_filter IS NULL THEN
        RETURN 'true';
    END IF;
    SELECT a.attname, a.atttypid INTO v
      FROM regexp_matches(p_filter, '\mt\.("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)', 'g') m
      JOIN pg_attribute a ON a.attrelid = p_tbl AND a.attname = (parse_ident(m[1]))[1] AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type y ON y.oid = a.atttypid
     WHERE a.atttypid >= 16384 OR y.typtype NOT IN ('b', 'r', 'm') OR y.typnamespace <> 'pg_catalog'::regnamespace
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'pgshadow: row_filter of % reads column %, whose type % is not a built-in type', p_tbl,
            quote_ident(v.attname), format_type(v.atttypid, NULL)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The column''s type changed after subscribing: shadow_unsubscribe() and subscribe again.';
    END IF;
    RETURN p_filter;
END
$$;
