-- The SQL text that applies rows on a target: values rendered as array
-- literals of each column's type, staged out of the logged statements, and
-- the apply mode (delete + insert, or upsert) the target's indexes allow.

-- A string as a dollar-quoted literal: unlike quote_literal it need not copy
-- the string doubling its quotes, which matters for the multi-megabyte array
-- literals of a chunk. The tag is one the string does not contain.
CREATE FUNCTION pgshadow._dollar(p text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_tag text := '$s$';
    v_n   integer := 0;
BEGIN
    WHILE strpos(p, v_tag) > 0 LOOP
        v_n := v_n + 1;
        v_tag := '$s' || v_n || '$';
    END LOOP;
    RETURN v_tag || p || v_tag;
END
$$;

-- How the target parses a column's text array literal: as an array of the
-- column's own type where the text form can go through array_in as it is
-- (array_in then calls the type's input function on each element, with no
-- text value made in between: a chunk applies about 30% faster). NULL means
-- text[] and a cast per value: for array types (their elements are array
-- literals themselves) and types whose array delimiter is not a comma (box).
CREATE FUNCTION pgshadow._array_of(p_type text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_type || '[]' FROM pg_type y
     WHERE y.oid = to_regtype(p_type) AND y.typdelim = ',' AND y.typcategory <> 'A' AND y.typarray <> 0
$$;

-- The statements that apply one chunk on a target: delete the keys (one
-- array per key column), then append the rows (one per shipped column), each
-- value parsed by the target's input function of its source type. p_keys and
-- p_rows hold SQL expressions of the array literals: the literals themselves
-- (_apply_sql), or the settings a staging statement put them in
-- (_stage_sql), so that these statements name no row value. The target maps
-- columns by name, so it may order them differently or have more (those get
-- their defaults). Rows are unnested in the select list, which streams them
-- (unnest in FROM would first copy the chunk into a tuplestore). With
-- p_upsert the rows are INSERT .. ON CONFLICT (key) DO UPDATE of the shipped
-- non-key columns (see _apply_mode): a changed row is updated in place, and
-- the target's other columns keep their values.
-- Given literals, the planner sees how many keys an array holds, and so
-- chooses between probing the key index per key and one hash join over a
-- scan of the table; that is why key chunks are large (see _ship).
CREATE FUNCTION pgshadow._apply_text(p_sub pgshadow.subscription, p_tr pgshadow.tracked, p_types text[],
                                     p_keys text[], p_rows text[], p_upsert boolean) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p_keys IS NULL THEN '' ELSE
               (SELECT format(' DELETE FROM %I.%I d USING unnest(%s) AS k(%s) WHERE %s;',
                       p_sub.dest_schema, p_sub.dest_table,
                       string_agg(format('%s::%s', v, coalesce(y, 'text[]')), ', ' ORDER BY i),
                       string_agg(quote_ident(c), ', ' ORDER BY i),
                       string_agg(format('d.%1$I = k.%1$I', c) || CASE WHEN y IS NULL THEN '::' || t ELSE '' END, ' AND ' ORDER BY i))
                  FROM unnest(p_tr.key_cols, p_tr.key_types, p_keys) WITH ORDINALITY AS u(c, t, v, i),
                       LATERAL pgshadow._array_of(t) AS y)
           END
        || CASE WHEN p_rows IS NULL THEN '' ELSE
               (SELECT format(' INSERT INTO %I.%I (%s) OVERRIDING SYSTEM VALUE SELECT %s',
                       p_sub.dest_schema, p_sub.dest_table,
                       string_agg(quote_ident(c), ', ' ORDER BY i),
                       string_agg(format('unnest(%s::%s)', v, coalesce(y, 'text[]'))
                                  || CASE WHEN y IS NULL THEN '::' || t ELSE '' END, ', ' ORDER BY i))
                  FROM unnest(p_sub.columns, p_types, p_rows) WITH ORDINALITY AS u(c, t, v, i),
                       LATERAL pgshadow._array_of(t) AS y)
               || CASE WHEN NOT p_upsert THEN '' ELSE
                      format(' ON CONFLICT (%s) DO ', (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_tr.key_cols) c))
                      || coalesce((SELECT 'UPDATE SET ' || string_agg(format('%1$I = EXCLUDED.%1$I', c), ', ')
                                     FROM unnest(p_sub.columns) c WHERE c <> ALL (p_tr.key_cols)),
                                  'NOTHING')  -- only key columns shipped: nothing to update
                  END
               || ';'
           END
$$;

-- _apply_text with the values in the statements (sync mode, shadow_compare).
CREATE FUNCTION pgshadow._apply_sql(p_sub pgshadow.subscription, p_tr pgshadow.tracked, p_types text[],
                                    p_keys text[], p_rows text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pgshadow._apply_text(p_sub, p_tr, p_types, pgshadow._staged('k', p_keys, false),
                                pgshadow._staged('r', p_rows, false), false)
$$;

-- Staging of a chunk's array literals on the target, so that the statements
-- that apply them (_apply_text over _staged) name no row value: a statement
-- that fails there (a constraint, a cast) is logged by the target with its
-- text, and this keeps row data out of the target's log. The literals go
-- into transaction-local settings pgshadow.<p_prefix><n> (a custom setting
-- takes any text, so this cannot fail on data; it needs no privilege, no
-- temporary table, and costs a copy of the text). Sent as a message of its
-- own: the target logs a failing message whole, so no statement that can fail
-- on data shares one with these.
-- Without p_staged (pgshadow.stage_values = off) nothing is staged.
CREATE FUNCTION pgshadow._stage_sql(p_prefix text, p_vals text[], p_staged boolean) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(format(' SET LOCAL pgshadow.%s%s = %s;', p_prefix, i, pgshadow._dollar(v)), '' ORDER BY i), '')
      FROM unnest(p_vals) WITH ORDINALITY AS u(v, i) WHERE p_staged
$$;

-- For _apply_text, the expressions of p_vals: reading what _stage_sql
-- staged, or (not p_staged) the literals themselves.
CREATE FUNCTION pgshadow._staged(p_prefix text, p_vals text[], p_staged boolean) RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(CASE WHEN p_staged THEN format('pg_catalog.current_setting(%L)', 'pgshadow.' || p_prefix || i)
                          ELSE pgshadow._dollar(v) END ORDER BY i)
      FROM unnest(p_vals) WITH ORDINALITY AS u(v, i)
$$;

-- How _ship applies a subscription's changes on its target (open connection
-- "pgshadow"): 'upsert' (delete the changed keys that have no current row,
-- then INSERT .. ON CONFLICT (key) DO UPDATE the current rows, so a changed
-- row is an UPDATE there: a non-deferrable foreign key to it holds, the
-- target's triggers see an update, its extra columns keep their values), or
-- 'replace' (delete every changed key, then insert the current rows).
-- Upsert is taken only where it gives the same result, which needs on the
-- destination table:
-- - a unique index on exactly the key columns, not partial, not deferrable
--   (the ON CONFLICT arbiter);
-- - no other unique or exclusion index checked before commit: upserting row
--   by row, a row taking a value another row of the same batch gives up
--   (two rows swapping values) would collide with that row's old version,
--   where replace deletes every changed key before inserting any row;
-- - no identity ALWAYS or generated column among the shipped non-key
--   columns (an UPDATE cannot set those);
-- - SELECT on the table and UPDATE on the shipped non-key columns (a
--   target role granted only INSERT and DELETE keeps working, by replace);
-- - for a full copy (p_full), rows in the table: an empty one is filled
--   faster by plain INSERT.
-- The look is one query of the target's catalog, before the apply's
-- transaction; a table changed in between fails the apply, naming it, and the
-- changes stay pending.
CREATE FUNCTION pgshadow._apply_mode(p_sub pgshadow.subscription, p_tr pgshadow.tracked, p_full boolean) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dest  text := format('%I.%I', p_sub.dest_schema, p_sub.dest_table);
    v_key   text := format('i.indnkeyatts = %s AND i.indexprs IS NULL AND i.indpred IS NULL'
                           ' AND i.indisunique AND i.indimmediate AND i.indisvalid'
                           ' AND ARRAY(SELECT a.attname FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS u(n, o)'
                           ' JOIN pg_catalog.pg_attribute a ON a.attrelid = r AND a.attnum = u.n WHERE u.o <= i.indnkeyatts) OPERATOR(pg_catalog.@>) %L::pg_catalog.name[]',
                           cardinality(p_tr.key_cols), p_tr.key_cols);
    v_other name[] := ARRAY(SELECT c FROM unnest(p_sub.columns) c WHERE c <> ALL (p_tr.key_cols));
    v_mode  text;
BEGIN
    v_mode := pgshadow._remote_value('pgshadow', p_sub.target, format(
        'SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = r AND %1$s)'
        ' AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = r AND (i.indisunique OR i.indisexclusion) AND NOT (%1$s)'
        '   AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = r AND c.condeferred))'
        ' AND pg_catalog.has_table_privilege(r, ''SELECT'')'
        ' AND NOT EXISTS (SELECT FROM pg_catalog.unnest(%2$L::pg_catalog.name[]) c WHERE NOT EXISTS ('
        '   SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = r AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped'
        '   AND a.attidentity <> ''a'' AND a.attgenerated = '''' AND pg_catalog.has_column_privilege(r, a.attnum, ''UPDATE'')))'
        ' THEN ''upsert'' ELSE ''replace'' END FROM pg_catalog.to_regclass(%3$L) r WHERE r IS NOT NULL',
        v_key, v_other, v_dest));
    IF v_mode = 'upsert' AND p_full THEN
        v_mode := pgshadow._remote_value('pgshadow', p_sub.target, format(
            'SELECT CASE WHEN EXISTS (SELECT FROM %s) THEN ''upsert'' ELSE ''replace'' END', v_dest));
    END IF;
    RETURN coalesce(v_mode, 'replace');  -- no such table: the apply fails, naming it
EXCEPTION WHEN OTHERS THEN
    PERFORM pgshadow._remote_failed(p_sub, SQLERRM, SQLSTATE);
END
$$;
