-- The SQL that reads a batch: its pending keys, the current rows of its
-- shipped columns in chunks, and the columns a subscription ships. Push
-- export runs it through _ship; file export (the CLI) runs it through COPY.

-- "(k1, k2) > (after[1]::t1, after[2]::t2)" for keyset pagination; the
-- p_after expression is a text[] holding the last key of the previous chunk.
CREATE FUNCTION pgshadow._after(p_alias text, p_cols name[], p_types text[], p_after text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('(%2$s IS NULL OR (%1$s) > (%3$s))',
                  string_agg(p_alias || quote_ident(c), ', ' ORDER BY i),
                  p_after,
                  string_agg(format('(%s)[%s]::%s', p_after, i, t), ', ' ORDER BY i))
      FROM unnest(p_cols, p_types) WITH ORDINALITY AS u(c, t, i)
$$;

-- SQL selecting the distinct pending keys of a subscription between two
-- snapshots, in key order, after a key, at most p_limit of them.
-- With p_with_at, each key also carries the time of its latest change
-- (column shadow_at), which the 'latest' conflict policy compares.
CREATE FUNCTION pgshadow._keys_sql(p_tbl regclass, p_old text, p_new text, p_after text, p_limit text,
                                   p_with_at boolean DEFAULT false)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('SELECT %1$s%6$s FROM pgshadow.%2$I WHERE %3$s AND shadow_op <> ''T''%4$s GROUP BY %1$s ORDER BY %1$s%5$s',
                  (SELECT string_agg(quote_ident(c), ', ') FROM unnest(t.key_cols) c),
                  t.shadow,
                  pgshadow._pending_where(p_old, p_new),
                  CASE WHEN p_after IS NULL THEN ''
                       ELSE ' AND ' || pgshadow._after('', t.key_cols, t.key_types, p_after) END,
                  CASE WHEN p_limit IS NULL THEN '' ELSE ' LIMIT ' || p_limit END,
                  CASE WHEN p_with_at THEN ', max(shadow_at) AS shadow_at' ELSE '' END)
      FROM pgshadow.tracked t WHERE t.tbl = p_tbl
$$;

-- SQL selecting the current rows (shipped columns, row filter applied) of
-- either the keys in relation p_keys_rel, or (p_keys_rel NULL) the whole
-- table in key order after a key, at most p_limit of them.
CREATE FUNCTION pgshadow._rows_sql(p_sub pgshadow.subscription, p_keys_rel text, p_after text, p_limit text)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('SELECT %s FROM %s t WHERE (%s)', 
                  (SELECT string_agg('t.' || quote_ident(c), ', ') FROM unnest(p_sub.columns) c),
                  p_sub.tbl,
                  pgshadow._filter_sql(p_sub.tbl, p_sub.row_filter))
        || CASE WHEN p_keys_rel IS NOT NULL THEN
               format(' AND (%s) IN (SELECT %s FROM %s)',
                      (SELECT string_agg('t.' || quote_ident(c), ', ') FROM unnest(t.key_cols) c),
                      (SELECT string_agg(quote_ident(c), ', ') FROM unnest(t.key_cols) c),
                      p_keys_rel)
           ELSE
               CASE WHEN p_after IS NULL THEN ''
                    ELSE ' AND ' || pgshadow._after('t.', t.key_cols, t.key_types, p_after) END
               || ' ORDER BY ' || (SELECT string_agg('t.' || quote_ident(c), ', ') FROM unnest(t.key_cols) c)
               || CASE WHEN p_limit IS NULL THEN '' ELSE ' LIMIT ' || p_limit END
           END
      FROM pgshadow.tracked t WHERE t.tbl = p_sub.tbl
$$;

-- Types of the shipped columns, as the target will cast them.
CREATE FUNCTION pgshadow._column_types(p_sub pgshadow.subscription) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v text[];
BEGIN
    SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY u.i) INTO v
      FROM unnest(p_sub.columns) WITH ORDINALITY AS u(c, i)
      JOIN pg_attribute a ON a.attrelid = p_sub.tbl AND a.attname = u.c AND NOT a.attisdropped AND a.attnum > 0;
    IF coalesce(cardinality(v), 0) <> cardinality(p_sub.columns) THEN
        RAISE EXCEPTION 'pgshadow: a column shipped from % to target "%" no longer exists (shipped: %)',
            p_sub.tbl, p_sub.target, p_sub.columns
            USING ERRCODE = 'undefined_column',
                  HINT = 'shadow_unsubscribe() and shadow_subscribe() again with the new column list.';
    END IF;
    RETURN v;
END
$$;

-- The columns a subscription ships now. One made without a column list
-- (all_columns) ships the table's shippable columns as they are: a column
-- added since is shipped, a dropped one no longer. An explicit list ships
-- exactly its columns (one added later is not among them), and one of them
-- dropped stops the table, naming it.
CREATE FUNCTION pgshadow._shipped_columns(p_sub pgshadow.subscription) RETURNS name[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_all  name[] := pgshadow._columns(p_sub.tbl, NULL, NULL);
    v_gone text;
BEGIN
    IF p_sub.all_columns THEN
        RETURN v_all;
    END IF;
    SELECT string_agg(quote_ident(c), ', ') INTO v_gone FROM unnest(p_sub.columns) c WHERE c <> ALL (v_all);
    IF v_gone IS NOT NULL THEN
        RAISE EXCEPTION 'pgshadow: column % of % is gone, and the column list of its subscription to target "%" names it: subscribe % again without it (shadow_unsubscribe(), then shadow_subscribe() with the new list; its initial copy brings %.% up to date)',
            v_gone, p_sub.tbl, p_sub.target, p_sub.tbl, quote_ident(p_sub.dest_schema), quote_ident(p_sub.dest_table)
            USING ERRCODE = 'undefined_column';
    END IF;
    RETURN p_sub.columns;
END
$$;

-- Brings a subscription's columns up to date before an export reads its
-- rows (push and file export, resync), and returns it so. The table is
-- locked first (ACCESS SHARE, which the read takes anyway) so that no ALTER
-- TABLE commits between this look at its columns and the read of its rows.
-- NOWAIT: an export holds the locks of the tables it shipped before until it
-- commits, so waiting here behind a TRUNCATE, ALTER TABLE or LOCK TABLE
-- (granted or queued) could close a lock cycle with the application's
-- transaction, and PostgreSQL may then abort that transaction as the
-- deadlock victim. The table fails this export instead (lock_not_available,
-- nothing moves) and ships with the next one (docs/DESIGN.md, guarantee 10).
-- With p_remote (a push export, over the open target connection), a column
-- the source gained ships only once the destination has it: until then the
-- table stops here with an error naming the column and the fix, and its
-- changes stay pending (nothing moves), as native logical replication does.
CREATE FUNCTION pgshadow._current_columns(p_sub pgshadow.subscription, p_remote boolean)
RETURNS pgshadow.subscription
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_cols name[];
    v_has  text;
    v_dest text := format('%I.%I', p_sub.dest_schema, p_sub.dest_table);
    v_add  text;
BEGIN
    BEGIN
        EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE NOWAIT', p_sub.tbl);
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'pgshadow: % is locked by another transaction (TRUNCATE, ALTER TABLE, LOCK TABLE ...): not shipped now, its changes wait for the next export', p_sub.tbl
            USING ERRCODE = 'lock_not_available',
                  DETAIL = 'An export does not wait for a table lock: it holds the locks of the tables it shipped before, and waiting could make the application''s transaction a deadlock victim.';
    END;
    v_cols := pgshadow._shipped_columns(p_sub);
    IF v_cols = p_sub.columns THEN
        RETURN p_sub;
    END IF;
    IF p_remote AND EXISTS (SELECT FROM unnest(v_cols) c WHERE c <> ALL (p_sub.columns)) THEN
        -- the destination's columns (NULL: no such table), read from the
        -- target's catalog, which needs nothing of pgshadow there
        v_has := pgshadow._remote_value('pgshadow', p_sub.target, format(
            'SELECT coalesce((SELECT pg_catalog.array_agg(a.attname) FROM pg_catalog.pg_attribute a'
            ' WHERE a.attrelid = r AND a.attnum > 0 AND NOT a.attisdropped), ''{}'')::text'
            ' FROM pg_catalog.to_regclass(%L) r WHERE r IS NOT NULL', v_dest));
        IF v_has IS NULL THEN
            RAISE EXCEPTION 'pgshadow: % ships to %, which does not exist on target "%"', p_sub.tbl, v_dest, p_sub.target
                USING ERRCODE = 'undefined_table';
        END IF;
        SELECT string_agg(format('ADD COLUMN %I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
          INTO v_add
          FROM pg_attribute a
         WHERE a.attrelid = p_sub.tbl AND a.attname = ANY (v_cols)
           AND a.attname <> ALL (p_sub.columns) AND a.attname <> ALL (v_has::name[]);
        IF v_add IS NOT NULL THEN
            RAISE EXCEPTION 'pgshadow: % has columns that % on target "%" lacks: add them there (ALTER TABLE % %); until then the changes of % wait',
                p_sub.tbl, v_dest, p_sub.target, v_dest, v_add, p_sub.tbl
                USING ERRCODE = 'undefined_column',
                      HINT = 'The changes ship with the new columns once the target has them. Rows not changed since keep the column''s default there: shadow_resync() copies them. A column renamed on the source is renamed on the target too.';
        END IF;
    END IF;
    PERFORM pgshadow._set_columns(p_sub.id, v_cols);
    p_sub.columns := v_cols;
    RETURN p_sub;
END
$$;

-- Records the columns a subscription to all columns ships now
-- (_current_columns): only the table's current columns, so a caller can
-- neither narrow nor widen what ships.
CREATE FUNCTION pgshadow._set_columns(p_id bigint, p_columns name[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub pgshadow.subscription;
BEGIN
    SELECT * INTO v_sub FROM pgshadow.subscription WHERE id = p_id;
    PERFORM pgshadow._check_may_export(v_sub.tbl, pgshadow._caller());
    IF NOT v_sub.all_columns OR p_columns IS DISTINCT FROM pgshadow._columns(v_sub.tbl, NULL, NULL) THEN
        RAISE EXCEPTION 'pgshadow: subscription % of % ships a column list of its own, or % are not its columns',
            p_id, v_sub.tbl, p_columns
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgshadow.subscription SET columns = p_columns WHERE id = p_id;
END
$$;

-- The one statement that reads a chunk and renders it as text arrays:
-- count of keys, count of rows, last key, one array literal per key column,
-- one array literal per shipped column, and each key's latest change time. Parameters: $1 old snapshot,
-- $2 new snapshot, $3 last key of the previous chunk (text[]), $4 chunk size.
-- p_keys_sql, when given, replaces the pending-keys query (sync mode reads the
-- keys of the statement's transition tables).
CREATE FUNCTION pgshadow._chunk_sql(p_sub pgshadow.subscription, p_keys_sql text DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('WITH k AS MATERIALIZED (%s), r AS MATERIALIZED (%s)'
                  ' SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM r),'
                  ' (SELECT ARRAY[%s] FROM k ORDER BY %s LIMIT 1), (SELECT ARRAY[%s] FROM k), (SELECT ARRAY[%s] FROM r),'
                  ' (SELECT array_agg(shadow_at) FROM k)',
                  coalesce(p_keys_sql, pgshadow._keys_sql(p_sub.tbl, '$1', '$2', '$3', '$4', true)),
                  pgshadow._rows_sql(p_sub, 'k', NULL, NULL), klast, kdesc, kagg, cagg)
    FROM (SELECT
            string_agg(quote_ident(c) || '::text', ', ') AS klast,
            string_agg(quote_ident(c) || ' DESC', ', ') AS kdesc,
            string_agg(format('array_agg(%I::text)::text', c), ', ') AS kagg
          FROM pgshadow.tracked t, unnest(t.key_cols) c WHERE t.tbl = p_sub.tbl) k,
         (SELECT string_agg(format('array_agg(%I::text)::text', c), ', ') AS cagg
            FROM unnest(p_sub.columns) c) c
$$;

-- Rows of a batch (p_keys_sql: a query of its pending keys, duplicates
-- allowed) or of the whole table (NULL), aggregated into chunks of $3 rows in
-- key order: one result row per chunk (row count, one array literal per
-- shipped column). Read through ONE cursor, so every chunk comes from the same
-- snapshot and the rows together satisfy the source's unique constraints.
-- With p_one_chunk the numbering is left out: one aggregate over every row.
-- Every aggregate of a chunk sees its rows in the same order, which keeps the
-- column arrays aligned without sorting inside the aggregates.
CREATE FUNCTION pgshadow._row_chunks_sql(p_sub pgshadow.subscription, p_keys_sql text, p_one_chunk boolean)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format(CASE WHEN p_one_chunk
                       THEN 'SELECT count(*), ARRAY[%1$s] FROM (SELECT %2$s FROM %4$s t WHERE (%5$s)%6$s) s HAVING count(*) > 0'
                       ELSE 'SELECT count(*), ARRAY[%1$s] FROM (SELECT %2$s, row_number() OVER (ORDER BY %3$s) AS pgshadow_rn'
                            ' FROM %4$s t WHERE (%5$s)%6$s) s GROUP BY (pgshadow_rn - 1) / $3 ORDER BY (pgshadow_rn - 1) / $3'
                  END,
                  (SELECT string_agg(format('array_agg(%I::text)::text', c), ', ') FROM unnest(p_sub.columns) c),
                  (SELECT string_agg('t.' || quote_ident(c), ', ') FROM unnest(p_sub.columns) c),
                  (SELECT string_agg('t.' || quote_ident(c), ', ') FROM unnest(t.key_cols) c),
                  p_sub.tbl,
                  pgshadow._filter_sql(p_sub.tbl, p_sub.row_filter),
                  CASE WHEN p_keys_sql IS NULL THEN '' ELSE
                      format(' AND (%s) IN (SELECT %s FROM (%s) k)',
                             (SELECT string_agg('t.' || quote_ident(c), ', ') FROM unnest(t.key_cols) c),
                             (SELECT string_agg(quote_ident(c), ', ') FROM unnest(t.key_cols) c),
                             p_keys_sql) END)
      FROM pgshadow.tracked t WHERE t.tbl = p_sub.tbl
$$;

-- SQL selecting the pending keys of table p_tr between snapshots $1 and $2,
-- duplicates kept: the semi-join source of a push batch's rows
-- (_row_chunks_sql), which needs no grouping or order.
CREATE FUNCTION pgshadow._pending_keys_sql(p_tr pgshadow.tracked) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('SELECT %s FROM pgshadow.%I WHERE %s AND shadow_op <> ''T''',
                  (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_tr.key_cols) c),
                  p_tr.shadow, pgshadow._pending_where('$1', '$2'))
$$;

-- SQL selecting a push batch's distinct pending keys (snapshots $1 and $2)
-- in chunks of $3 keys, through one cursor: one pass over the shadow table
-- however many chunks there are. Each chunk row counts its keys and lists,
-- one array literal per key column, the keys to delete on the target: all
-- of them, or (p_upsert) those without a current row (deleted, or left the
-- row filter), since upsert overwrites the others.
CREATE FUNCTION pgshadow._key_chunks_sql(p_sub pgshadow.subscription, p_tr pgshadow.tracked, p_upsert boolean)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format(
        'SELECT count(*), ARRAY[%1$s] FROM (SELECT %2$s, row_number() OVER (ORDER BY %2$s) AS pgshadow_rn, %5$s AS pgshadow_gone'
        ' FROM pgshadow.%3$I s WHERE %4$s AND shadow_op <> ''T'' GROUP BY %2$s) k'
        ' GROUP BY (pgshadow_rn - 1) / $3 ORDER BY (pgshadow_rn - 1) / $3',
        (SELECT string_agg(format('array_agg(%I::text) FILTER (WHERE pgshadow_gone)::text', c), ', ') FROM unnest(p_tr.key_cols) c),
        (SELECT string_agg(quote_ident(c), ', ') FROM unnest(p_tr.key_cols) c),
        p_tr.shadow, pgshadow._pending_where('$1', '$2'),
        CASE WHEN NOT p_upsert THEN 'true' ELSE
            format('NOT EXISTS (SELECT FROM %s t WHERE %s AND (%s))', p_sub.tbl,
                   (SELECT string_agg(format('t.%1$I = s.%1$I', c), ' AND ') FROM unnest(p_tr.key_cols) c),
                   pgshadow._filter_sql(p_sub.tbl, p_sub.row_filter)) END)
$$;
