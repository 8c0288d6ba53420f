-- Shipping: the SQL that reads a batch (pending keys and their current rows)
-- and the SQL that applies it on a target. Push export runs both here, over
-- dblink; file export (the CLI) runs the same read queries through COPY.
--
-- Values travel as text produced by each type's output function under fixed
-- settings (pgshadow._settings: DateStyle ISO, IntervalStyle postgres, TimeZone
-- UTC, extra_float_digits 3, bytea_output hex, lc_monetary C) and are parsed by the same type's
-- input function on the target under the same settings, so they round-trip
-- exactly whatever either server's defaults are. Rows go column by column as
-- text arrays, so one statement of a few literals carries a whole chunk (up to
-- 20k keys or rows), no per-row statements; chunks are pipelined (see _ship).

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
    EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', p_sub.tbl);
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

-- Settings every apply on a target runs under: the fixed value settings
-- (pgshadow._settings), and statement_timeout at pgshadow.remote_timeout, so
-- a statement stuck on the target (a lock it waits for) ends there too.
-- pgshadow.origin marks the session as applying replicated changes (a custom
-- setting, so it works on targets that do not have pgshadow installed).
CREATE FUNCTION pgshadow._remote_begin() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'BEGIN; SET LOCAL search_path = pg_catalog, pg_temp;'
        || (SELECT string_agg(format(' SET LOCAL %I = %L;', name, setting), '') FROM pgshadow._settings())
        || format(' SET LOCAL statement_timeout = %L;',
                  (extract(epoch FROM pgshadow._remote_timeout()) * 1000)::bigint::text)
        || format(' SET LOCAL pgshadow.origin = %L;', pgshadow._node())
$$;

-- This database's name as an origin of changes.
CREATE FUNCTION pgshadow._node() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(current_setting('pgshadow.node_name', true), ''), current_database())
$$;

-- This database's identity as a node: what its peers know it by (a name may
-- change and two databases may share one).
CREATE FUNCTION pgshadow._node_id() RETURNS uuid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT id FROM pgshadow.node
$$;

-- Waits until the next result of dblink connection p_conn (to target
-- p_target) has arrived. dblink's own waits (dblink_exec, dblink_get_result,
-- dblink() on PostgreSQL before 17) block in libpq, where neither
-- statement_timeout nor pg_cancel_backend nor pg_terminate_backend reach
-- them, so a target that accepts TCP but never answers (a stopped process, a
-- half-open link) would hang the caller for ever. Here the wait is short
-- pg_sleeps, which a cancel interrupts, and after pgshadow.remote_timeout the
-- connection is closed and the call fails naming the target. Closing is the
-- end that cannot hang itself: a cancel request waits for the stopped
-- server's answer. The target rolls the transaction back when it sees the
-- connection gone.
CREATE FUNCTION pgshadow._remote_ready(p_conn text, p_target text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl   name := pgshadow._dblink();
    v_limit interval := pgshadow._remote_timeout();
    v_start timestamptz := clock_timestamp();
    v_nap   float8 := 0.0002;  -- doubling to 10ms: a short apply is not slowed down by the polling
    v_busy  integer;
BEGIN
    LOOP
        EXECUTE format('SELECT %I.dblink_is_busy(%L)', v_dbl, p_conn) INTO v_busy;
        EXIT WHEN v_busy = 0;
        IF v_limit > interval '0' AND clock_timestamp() - v_start >= v_limit THEN
            EXECUTE format('SELECT %I.dblink_disconnect(%L)', v_dbl, p_conn);
            RAISE EXCEPTION 'target "%" did not answer within % (pgshadow.remote_timeout); the connection was closed',
                p_target, v_limit
                USING ERRCODE = 'connection_failure',
                      HINT = 'A stopped or unreachable target, or a remote statement that takes longer: raise pgshadow.remote_timeout for the latter.';
        END IF;
        PERFORM pg_sleep(v_nap);
        v_nap := least(v_nap * 2, 0.01);
    END LOOP;
EXCEPTION WHEN query_canceled THEN
    -- a cancel or statement_timeout here: leave nothing in flight on the
    -- connection (the next call would find it busy)
    EXECUTE format('SELECT %I.dblink_disconnect(%L)', v_dbl, p_conn);
    RAISE;
END
$$;

-- Runs SQL (one or several statements, results discarded) on dblink
-- connection p_conn, waiting interruptibly and at most
-- pgshadow.remote_timeout for each result; a remote error is raised as is.
CREATE FUNCTION pgshadow._remote_exec(p_conn text, p_target text, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl  name := pgshadow._dblink();
    v_sent integer;
    v_n    bigint;
BEGIN
    EXECUTE format('SELECT %I.dblink_send_query(%L, $1)', v_dbl, p_conn) INTO v_sent USING p_sql;
    IF v_sent IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'could not send the statements to target "%" (connection lost?)', p_target
            USING ERRCODE = 'connection_failure';
    END IF;
    LOOP
        PERFORM pgshadow._remote_ready(p_conn, p_target);
        EXECUTE format('SELECT count(*) FROM %I.dblink_get_result(%L) AS r(status text)', v_dbl, p_conn) INTO v_n;
        EXIT WHEN v_n = 0;
    END LOOP;
END
$$;

-- The one value (as text) of a one-column query run on dblink connection
-- p_conn, waiting as _remote_exec does.
CREATE FUNCTION pgshadow._remote_value(p_conn text, p_target text, p_sql text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl  name := pgshadow._dblink();
    v_sent integer;
    v      text;
    v_n    bigint;
BEGIN
    EXECUTE format('SELECT %I.dblink_send_query(%L, $1)', v_dbl, p_conn) INTO v_sent USING p_sql;
    IF v_sent IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'could not send a query to target "%" (connection lost?)', p_target
            USING ERRCODE = 'connection_failure';
    END IF;
    PERFORM pgshadow._remote_ready(p_conn, p_target);
    EXECUTE format('SELECT min(v) FROM %I.dblink_get_result(%L) AS r(v text)', v_dbl, p_conn) INTO v;
    LOOP  -- collect the end of the results, so the connection is free again
        PERFORM pgshadow._remote_ready(p_conn, p_target);
        EXECUTE format('SELECT count(*) FROM %I.dblink_get_result(%L) AS r(v text)', v_dbl, p_conn) INTO v_n;
        EXIT WHEN v_n = 0;
    END LOOP;
    RETURN v;
END
$$;

-- Runs SQL on the open target connection, naming target and table on failure.
CREATE FUNCTION pgshadow._remote(p_sub pgshadow.subscription, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_ctx text;
BEGIN
    PERFORM pgshadow._remote_exec('pgshadow', p_sub.target, p_sql);
EXCEPTION
    WHEN query_canceled THEN
        -- the target's statement_timeout (pgshadow.remote_timeout) arrives
        -- as a cancel. It is this table's failure, not a cancel of this
        -- session: it names the target and gets SQLSTATE PS002, which WHEN
        -- OTHERS catches (57014 it does not), so the export goes on with the
        -- other tables and the async queue records it. A cancel of this
        -- session stays as it is.
        GET STACKED DIAGNOSTICS v_ctx = PG_EXCEPTION_CONTEXT;
        IF v_ctx LIKE '%on dblink connection%' THEN
            PERFORM pgshadow._remote_failed(p_sub, SQLERRM, 'PS002');
        END IF;
        RAISE;
    WHEN OTHERS THEN
        PERFORM pgshadow._remote_failed(p_sub, SQLERRM, SQLSTATE);
END
$$;

-- Sends SQL on the open target connection and returns at once, so the caller
-- builds the next chunk while the target applies this one. At most one
-- statement string is in flight: _remote_wait must collect it before the
-- connection is used again. (A send itself blocks only while the target does
-- not read; the connection's tcp_user_timeout, see _connstr, bounds that.)
CREATE FUNCTION pgshadow._remote_send(p_sub pgshadow.subscription, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sent integer;
BEGIN
    EXECUTE format('SELECT %I.dblink_send_query(%L, $1)', pgshadow._dblink(), 'pgshadow') INTO v_sent USING p_sql;
    IF v_sent IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'could not send the statements (connection lost?)' USING ERRCODE = 'connection_failure';
    END IF;
EXCEPTION WHEN OTHERS THEN
    PERFORM pgshadow._remote_failed(p_sub, SQLERRM, SQLSTATE);
END
$$;

-- Waits until the statements _remote_send sent have run, collecting the
-- result of each (a command status row, then an empty result at the end); a
-- statement that failed raises its error here.
CREATE FUNCTION pgshadow._remote_wait(p_sub pgshadow.subscription) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl name := pgshadow._dblink();
    v_n   bigint;
    v_ctx text;
BEGIN
    LOOP
        PERFORM pgshadow._remote_ready('pgshadow', p_sub.target);
        EXECUTE format('SELECT count(*) FROM %I.dblink_get_result(%L) AS r(status text)', v_dbl, 'pgshadow') INTO v_n;
        EXIT WHEN v_n = 0;
    END LOOP;
EXCEPTION
    WHEN query_canceled THEN
        GET STACKED DIAGNOSTICS v_ctx = PG_EXCEPTION_CONTEXT;  -- as in _remote
        IF v_ctx LIKE '%on dblink connection%' THEN
            PERFORM pgshadow._remote_failed(p_sub, SQLERRM, 'PS002');
        END IF;
        RAISE;
    WHEN OTHERS THEN
        PERFORM pgshadow._remote_failed(p_sub, SQLERRM, SQLSTATE);
END
$$;

-- The error of a failed apply, naming table, destination and target.
CREATE FUNCTION pgshadow._remote_failed(p_sub pgshadow.subscription, p_message text, p_state text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_state = '23503' THEN
        -- a copy replaces a table's rows by DELETE, and a consistent export
        -- applies several tables in one transaction: both need the target's
        -- foreign keys checked at commit
        RAISE EXCEPTION 'pgshadow: applying % to %.% on target "%" failed: %',
            p_sub.tbl, quote_ident(p_sub.dest_schema), quote_ident(p_sub.dest_table), p_sub.target, p_message
            USING ERRCODE = p_state,
                  HINT = 'Declare the foreign key DEFERRABLE on the target (ALTER TABLE ... ALTER CONSTRAINT ... DEFERRABLE): pgshadow defers constraints to the commit of copies and consistent exports (shadow_alter_target).';
    END IF;
    RAISE EXCEPTION 'pgshadow: applying % to %.% on target "%" failed: %',
        p_sub.tbl, quote_ident(p_sub.dest_schema), quote_ident(p_sub.dest_table), p_sub.target, p_message
        USING ERRCODE = p_state;
END
$$;

-- Opens the target connection (named "pgshadow") with the caller's user
-- mapping, within connect_timeout (see _connstr). A refusal keeps the
-- server's reason (dblink puts it in the DETAIL: a failed password, a
-- missing SCRAM secret) in the message, where shadow_status and the export's
-- summary show it, and in the DETAIL.
CREATE FUNCTION pgshadow._connect(p_target text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl    name := pgshadow._dblink();
    v_server name;
    v_peer   text;
    v_msg    text;
    v_detail text;
    v_hint   text;
BEGIN
    SELECT server INTO v_server FROM pgshadow.target WHERE name = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist', p_target
            USING ERRCODE = 'undefined_object', HINT = 'Create it with shadow_add_target(target, server).';
    ELSIF v_server IS NULL THEN
        RAISE EXCEPTION 'pgshadow: target "%" is a file target; ship to it with the pgshadow export command', p_target
            USING ERRCODE = 'wrong_object_type';
    END IF;
    PERFORM pgshadow._disconnect();
    BEGIN
        EXECUTE format('SELECT %I.dblink_connect(%L, $1)', v_dbl, 'pgshadow') USING pgshadow._connstr(v_server);
        -- a target running pgshadow applies through pgshadow.apply()
        -- (conflict detection), and is told which node this is
        v_peer := pgshadow._peer_probe('pgshadow', p_target);
    EXCEPTION
    WHEN query_canceled THEN
        -- statement_timeout or a cancel while connecting (on PostgreSQL 16
        -- and later the only bound of a connect to a target that accepts
        -- TCP and never answers): still a cancel, naming the target
        PERFORM pgshadow._disconnect();
        RAISE EXCEPTION 'pgshadow: connecting to target "%" (foreign server "%") was cancelled: %', p_target, v_server, SQLERRM
            USING ERRCODE = 'query_canceled';
    WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        PERFORM pgshadow._disconnect();
        v_msg := format('pgshadow: cannot connect to target "%s" (foreign server "%s"): %s', p_target, v_server, v_msg)
              || CASE WHEN v_detail <> '' THEN ': ' || regexp_replace(btrim(v_detail, E' \n'), '\s*\n\s*', ' ', 'g') ELSE '' END;
        IF v_detail = '' AND v_hint = '' THEN
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = SQLSTATE;
        ELSIF v_hint = '' THEN
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = SQLSTATE, DETAIL = v_detail;
        ELSE
            RAISE EXCEPTION USING MESSAGE = v_msg, ERRCODE = SQLSTATE, DETAIL = v_detail, HINT = v_hint;
        END IF;
    END;
    PERFORM set_config('pgshadow.peer', CASE WHEN v_peer = 'off' THEN 'off' ELSE 'on' END, true);
    PERFORM set_config('pgshadow.peer_id', CASE WHEN v_peer NOT IN ('on', 'off') THEN v_peer ELSE '' END, true);
END
$$;

-- Asks target p_target which node it is, over a connection of its own
-- ("pgshadow_peer", with the caller's user mapping, so it may run while a
-- "pgshadow" connection is open), records the answer (_learn_peer) and
-- returns it as _peer_probe does. A failure names the target.
CREATE FUNCTION pgshadow._learn(p_target text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl    name := pgshadow._dblink();
    v_server name;
    v_peer   text;
BEGIN
    SELECT server INTO v_server FROM pgshadow.target WHERE name = p_target;
    IF v_server IS NULL THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist or is a file target', p_target USING ERRCODE = 'undefined_object';
    END IF;
    BEGIN
        EXECUTE format('SELECT %I.dblink_connect(%L, $1)', v_dbl, 'pgshadow_peer') USING pgshadow._connstr(v_server);
        v_peer := pgshadow._peer_probe('pgshadow_peer', p_target);
        EXECUTE format('SELECT %I.dblink_disconnect(%L)', v_dbl, 'pgshadow_peer');
    EXCEPTION WHEN OTHERS THEN
        EXECUTE format('SELECT %I.dblink_disconnect(%L) FROM pg_catalog.unnest(%I.dblink_get_connections()) c WHERE c = %L',
                       v_dbl, 'pgshadow_peer', v_dbl, 'pgshadow_peer');
        RAISE EXCEPTION 'pgshadow: cannot ask target "%" (foreign server "%") which node it is: %', p_target, v_server, SQLERRM
            USING ERRCODE = SQLSTATE;
    END;
    RETURN v_peer;
END
$$;

-- What target p_target (open dblink connection p_conn) is: 'off' (no
-- pgshadow there), 'on' (a pgshadow without node ids: before 0.2.0) or its
-- node id; recorded with the target (_learn_peer).
CREATE FUNCTION pgshadow._peer_probe(p_conn text, p_target text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_kind text;
    v_who  text;
BEGIN
    v_kind := pgshadow._remote_value(p_conn, p_target,
        'SELECT CASE WHEN pg_catalog.to_regprocedure(''pgshadow._node_id()'') IS NOT NULL THEN ''id'''
        ' WHEN pg_catalog.to_regprocedure(''pgshadow.apply(text,regclass,text,text[],timestamptz[],text[],name[],text[])'') IS NOT NULL'
        ' THEN ''on'' ELSE ''off'' END');
    IF v_kind <> 'id' THEN
        PERFORM pgshadow._learn_peer(p_target, NULL, NULL);
        RETURN v_kind;
    END IF;
    -- the id first: it has a fixed length, the name may hold anything
    v_who := pgshadow._remote_value(p_conn, p_target, 'SELECT pgshadow._node_id()::text || '' '' || pgshadow._node()');
    PERFORM pgshadow._learn_peer(p_target, left(v_who, 36)::uuid, substr(v_who, 38));
    RETURN left(v_who, 36);
END
$$;

CREATE FUNCTION pgshadow._disconnect() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl  name := pgshadow._dblink();
    v_open boolean;
BEGIN
    EXECUTE format('SELECT %L = ANY (%I.dblink_get_connections())', 'pgshadow', v_dbl) INTO v_open;
    IF v_open THEN
        EXECUTE format('SELECT %I.dblink_disconnect(%L)', v_dbl, 'pgshadow');
    END IF;
END
$$;

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

-- Hands the next statements of a pipelined apply to the target: waits for
-- the ones in flight (p_busy), if any, then sends these without waiting, so
-- the source reads and renders the next chunk while the target applies this
-- one. Returns true: something is in flight now.
CREATE FUNCTION pgshadow._remote_pipe(p_sub pgshadow.subscription, p_sql text, p_busy boolean) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_busy THEN
        PERFORM pgshadow._remote_wait(p_sub);
    END IF;
    PERFORM pgshadow._remote_send(p_sub, p_sql);
    RETURN true;
END
$$;

-- _remote_pipe of a chunk's staged values (p_stage, if any) and then of the
-- statements that apply them (p_apply), as two messages (see _stage_sql).
CREATE FUNCTION pgshadow._remote_flush(p_sub pgshadow.subscription, p_stage text, p_apply text, p_busy boolean)
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_stage <> '' THEN
        p_busy := pgshadow._remote_pipe(p_sub, p_stage, p_busy);
    END IF;
    RETURN pgshadow._remote_pipe(p_sub, p_apply, p_busy);
END
$$;

-- Ships one batch (the keys that became visible between p_old and p_new) or,
-- with p_copy, the whole table, inside ONE remote transaction: first every
-- pending key is deleted (a statement per million keys), then the current
-- rows are appended (in chunks of at most 20k rows, all read under one
-- snapshot), so the target passes through no state that breaks a unique
-- constraint the source keeps. Statements are pipelined: the target applies
-- one while the source reads and renders the next (dblink_send_query), so
-- the two servers work at the same time. A batch that fits in one chunk is
-- one round trip. A batch
-- holding a TRUNCATE ships as TRUNCATE + full copy: right whatever order the
-- batch's transactions committed in.
CREATE FUNCTION pgshadow._ship(p_sub pgshadow.subscription, p_old pg_snapshot, p_new pg_snapshot,
                               p_copy boolean, p_chunk integer,
                               OUT keys bigint, OUT upserts bigint, OUT deletes bigint, OUT truncated boolean,
                               OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp  -- and the fixed value settings (89_settings.sql)
SET enable_hashagg = off   -- stream the chunk aggregation instead of holding every chunk
SET work_mem = '64MB'      -- a batch's key sort (1M keys: about 25 MB) stays in memory
AS $$
DECLARE
    v_tr     pgshadow.tracked;
    v_types  text[] := pgshadow._column_types(p_sub);
    v_dest   text := format('%I.%I', p_sub.dest_schema, p_sub.dest_table);
    v_full   boolean;
    v_keys   text;
    v_after  text[];
    v_last   text[];
    v_nkeys  bigint;
    v_nrows  bigint;
    v_karr   text[];
    v_rarr   text[];
    v_at     timestamptz[];
    v_buf    text;                -- statements to apply, naming no row value
    v_stage  text;                -- what they apply, staged (_stage_sql); sent first
    v_upsert boolean;
    -- pgshadow.stage_values = off puts the values in the applying statements
    -- again (one message per chunk: a little faster, see README)
    v_staged boolean := coalesce(nullif(current_setting('pgshadow.stage_values', true), ''), 'on')::boolean;
    v_cur    refcursor;
    v_first  boolean := true;    -- no key chunk in v_buf yet
    v_rows   boolean := false;   -- a chunk of rows is in v_buf
    v_busy   boolean := false;
    v_nestloop text;
    v_appname  text := current_setting('application_name');
    -- NULL when never analyzed: the total is then unknown
    v_total    bigint := pgshadow._row_estimate(p_sub.tbl);
    -- rows per statement sent: small enough that the target starts applying
    -- early and the source's last chunk, which nothing overlaps, is short
    -- (measured on 100k updated rows: 20k about as fast as 50k or 100k, 5k slower)
    v_chunk  integer := least(p_chunk, 20000);
    -- keys per DELETE: one statement deletes a whole batch of up to a
    -- million keys, so the target's planner may pick one hash join over a
    -- scan of the table (a 1M-key batch in a 1M-row table: 2.9 s against 4
    -- by index probes); in 20k-key chunks it would scan the table per chunk
    v_key_chunk integer := greatest(p_chunk, 1000000);
    -- a consistent export (shadow_export) holds one remote transaction open
    -- for all the target's tables: then this batch neither begins nor ends it
    v_open   boolean := current_setting('pgshadow.consistent_batch', true) IS NOT DISTINCT FROM 'on';
    v_stack  text;
BEGIN
    IF v_open THEN
        -- only _export_consistent's transaction counts: a caller who sets the
        -- setting herself must not get a batch applied without its BEGIN
        -- (the fixed settings) and COMMIT
        GET DIAGNOSTICS v_stack = PG_CONTEXT;
        v_open := strpos(v_stack, 'pgshadow._export_consistent(') > 0;
    END IF;
    PERFORM pgshadow._check_policy(p_sub.tbl, p_sub.target, p_sub.on_conflict);
    SELECT * INTO v_tr FROM pgshadow.tracked WHERE tbl = p_sub.tbl;
    keys := 0; upserts := 0; deletes := 0; truncated := false; conflicts := 0;
    IF NOT p_copy THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE %s AND shadow_op = ''T'')',
                       v_tr.shadow, pgshadow._pending_where('$1', '$2'))
           INTO truncated USING p_old, p_new;
    END IF;
    v_full := p_copy OR truncated;

    IF current_setting('pgshadow.peer', true) = 'on' AND NOT v_full THEN
        -- A peer applies each chunk through pgshadow.apply(), which needs a
        -- chunk's keys and rows together to resolve conflicts.
        IF NOT v_open THEN
            PERFORM pgshadow._remote(p_sub, pgshadow._remote_begin());
        END IF;
        v_keys := pgshadow._chunk_sql(p_sub);
        LOOP
            EXECUTE v_keys INTO v_nkeys, v_nrows, v_last, v_karr, v_rarr, v_at USING p_old, p_new, v_after, p_chunk;
            IF v_nkeys > 0 THEN
                conflicts := conflicts + pgshadow._remote_apply(p_sub, v_karr, v_at, CASE WHEN v_nrows > 0 THEN v_rarr END);
            END IF;
            keys := keys + v_nkeys;
            upserts := upserts + v_nrows;
            EXIT WHEN v_nkeys < p_chunk;
            v_after := v_last;
        END LOOP;
        IF NOT v_open THEN
            PERFORM pgshadow._remote(p_sub, 'COMMIT');
        END IF;
        deletes := keys - upserts;
        RETURN;
    END IF;

    v_upsert := pgshadow._apply_mode(p_sub, v_tr, v_full) = 'upsert';
    -- v_stage and v_buf hold what is not sent yet: they are flushed only when
    -- more follows, so a batch of one chunk (its BEGIN and staged values,
    -- then its deletes, rows and COMMIT) goes in two round trips
    -- A full copy replaces the target's rows by DELETE, not TRUNCATE: readers
    -- of the target keep seeing the old rows until the new ones commit
    -- (TRUNCATE would lock them out for the whole copy), and rows other
    -- tables reference may be replaced within deferred constraints (so the
    -- copy defers them: a DEFERRABLE foreign key to the table holds at commit).
    -- Staged values go first, in a message of their own that opens the
    -- transaction (none is opened inside a consistent export's); an
    -- upserting full copy deletes what it did not write at the end.
    v_stage := CASE WHEN v_staged AND NOT v_open THEN pgshadow._remote_begin() ELSE '' END;
    v_buf := CASE WHEN v_staged OR v_open THEN '' ELSE pgshadow._remote_begin() END
          || CASE WHEN v_full THEN ' SET CONSTRAINTS ALL DEFERRED;' ELSE '' END
          || CASE WHEN v_full AND NOT v_upsert THEN format(' DELETE FROM %s;', v_dest) ELSE '' END;
    IF NOT v_full THEN
        -- the distinct pending keys, in chunks of v_key_chunk, through one
        -- cursor: one pass over the shadow table however many chunks there
        -- are; each chunk counts its keys and lists those to delete: all of
        -- them, or (upsert) those without a current row (deleted, or left
        -- the row filter). A row that comes or goes between this read and
        -- the read of the rows is shipped by the next batch, as its change
        -- commits after this batch's snapshot.
        OPEN v_cur FOR EXECUTE format(
            'SELECT count(*), ARRAY[%1$s] FROM (SELECT %2$s, row_number() OVER (ORDER BY %2$s) AS pgshadow_rn, %5$s AS pgshadow_gone'
            ' FROM pgshadow.%3$I s WHERE %4$s AND shadow_op <> ''T'' GROUP BY %2$s) k'
            ' GROUP BY (pgshadow_rn - 1) / $3 ORDER BY (pgshadow_rn - 1) / $3',
            (SELECT string_agg(format('array_agg(%I::text) FILTER (WHERE pgshadow_gone)::text', c), ', ') FROM unnest(v_tr.key_cols) c),
            (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
            v_tr.shadow, pgshadow._pending_where('$1', '$2'),
            CASE WHEN NOT v_upsert THEN 'true' ELSE
                format('NOT EXISTS (SELECT FROM %s t WHERE %s AND (%s))', p_sub.tbl,
                       (SELECT string_agg(format('t.%1$I = s.%1$I', c), ' AND ') FROM unnest(v_tr.key_cols) c),
                       pgshadow._filter_sql(p_sub.tbl, p_sub.row_filter)) END)
          USING p_old, p_new, v_key_chunk;
        LOOP
            FETCH v_cur INTO v_nkeys, v_karr;
            EXIT WHEN NOT FOUND;
            keys := keys + v_nkeys;
            CONTINUE WHEN v_karr[1] IS NULL;  -- (upsert) every key of the chunk has a row
            IF NOT v_first THEN
                v_busy := pgshadow._remote_flush(p_sub, v_stage, v_buf, v_busy);
                v_stage := ''; v_buf := '';
            END IF;
            v_stage := v_stage || pgshadow._stage_sql('k', v_karr, v_staged);
            v_buf := v_buf || pgshadow._apply_text(p_sub, v_tr, v_types, pgshadow._staged('k', v_karr, v_staged), NULL, false);
            v_first := false;
        END LOOP;
        CLOSE v_cur;
        IF keys >= v_chunk AND v_buf <> '' THEN
            -- more than one chunk of rows follows: the target deletes while
            -- the source reads them (reading starts with a sort of the batch)
            v_busy := pgshadow._remote_flush(p_sub, v_stage, v_buf, v_busy);
            v_stage := ''; v_buf := '';
        END IF;
    END IF;

    -- A batch touching a good part of the table reads it faster by one hash
    -- join than by an index probe per key; the planner cannot know the batch
    -- size (the shadow rows' snapshot filter defeats its estimates), we do.
    -- The setting holds only while the cursor is planned: left on, it would
    -- slow every later query of the transaction, ours (each chunk's SQL took
    -- ten times as long to build) and the caller's.
    v_nestloop := current_setting('enable_nestloop');
    IF NOT v_full AND keys > 10000
       AND keys > 0.05 * coalesce(v_total, 0) THEN
        PERFORM set_config('enable_nestloop', 'off', true);
    END IF;
    -- the pending keys again, as a plain semi-join source (no grouping or order)
    OPEN v_cur FOR EXECUTE pgshadow._row_chunks_sql(p_sub,
            CASE WHEN v_full THEN NULL
                 ELSE format('SELECT %s FROM pgshadow.%I WHERE %s AND shadow_op <> ''T''',
                             (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c),
                             v_tr.shadow, pgshadow._pending_where('$1', '$2')) END,
            NOT v_full AND keys < v_chunk)
        USING p_old, p_new, v_chunk;
    PERFORM set_config('enable_nestloop', v_nestloop, true);
    PERFORM pgshadow._progress(p_sub.id, p_sub.tbl, v_full, 0, CASE WHEN v_full THEN v_total ELSE keys END);
    LOOP
        FETCH v_cur INTO v_nrows, v_rarr;
        EXIT WHEN NOT FOUND;
        IF v_rows THEN
            v_busy := pgshadow._remote_flush(p_sub, v_stage, v_buf, v_busy);
            v_stage := ''; v_buf := '';
            -- progress, for other sessions to watch (shadow_progress)
            PERFORM pgshadow._progress(p_sub.id, p_sub.tbl, v_full, upserts, CASE WHEN v_full THEN v_total ELSE keys END);
        END IF;
        v_stage := v_stage || pgshadow._stage_sql('r', v_rarr, v_staged);
        v_buf := v_buf || pgshadow._apply_text(p_sub, v_tr, v_types, NULL, pgshadow._staged('r', v_rarr, v_staged), v_upsert);
        v_rows := true;
        upserts := upserts + v_nrows;
    END LOOP;
    CLOSE v_cur;
    PERFORM set_config('application_name', v_appname, true);
    IF v_busy THEN
        PERFORM pgshadow._remote_wait(p_sub);
    END IF;
    IF v_stage <> '' THEN
        PERFORM pgshadow._remote(p_sub, v_stage);
    END IF;
    IF v_full AND v_upsert THEN
        -- every row of the source was written by this transaction (an
        -- update too makes a new row version): the others are not in the
        -- source any more. Rows other tables reference are kept where the
        -- source kept them, so a non-deferrable foreign key holds.
        v_buf := v_buf || format(' DELETE FROM %s d WHERE NOT d.xmin OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id()::pg_catalog.xid;', v_dest);
    END IF;
    IF NOT v_open THEN
        PERFORM pgshadow._remote(p_sub, v_buf || ' COMMIT;');
    ELSIF v_buf <> '' THEN
        PERFORM pgshadow._remote(p_sub, v_buf);
    END IF;

    IF v_full THEN
        keys := upserts;
    ELSE
        deletes := keys - upserts;
    END IF;
END
$$;
