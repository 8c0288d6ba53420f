-- Statements on a target (dblink): run one, read a value, send without
-- waiting and collect later (a pipeline), with waits that a cancel or
-- pgshadow.remote_timeout can end.

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

-- Sends SQL (one or several statements) on dblink connection p_conn
-- without waiting for it; at most one send may be in flight on a connection.
CREATE FUNCTION pgshadow._remote_post(p_conn text, p_target text, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sent integer;
BEGIN
    EXECUTE format('SELECT %I.dblink_send_query(%L, $1)', pgshadow._dblink(), p_conn) INTO v_sent USING p_sql;
    IF v_sent IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'could not send the statements to target "%" (connection lost?)', p_target
            USING ERRCODE = 'connection_failure';
    END IF;
END
$$;

-- Collects every result of what was sent on p_conn (a command status or a
-- row set each, then an empty result at the end), so the connection is free
-- again, waiting interruptibly and at most pgshadow.remote_timeout for each;
-- a statement that failed raises its error here, as is.
CREATE FUNCTION pgshadow._remote_drain(p_conn text, p_target text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_dbl name := pgshadow._dblink();
    v_n   bigint;
BEGIN
    LOOP
        PERFORM pgshadow._remote_ready(p_conn, p_target);
        EXECUTE format('SELECT count(*) FROM %I.dblink_get_result(%L) AS r(v text)', v_dbl, p_conn) INTO v_n;
        EXIT WHEN v_n = 0;
    END LOOP;
END
$$;

-- Runs SQL (one or several statements, results discarded) on dblink
-- connection p_conn, waiting as _remote_drain does.
CREATE FUNCTION pgshadow._remote_exec(p_conn text, p_target text, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._remote_post(p_conn, p_target, p_sql);
    PERFORM pgshadow._remote_drain(p_conn, p_target);
END
$$;

-- The one value (as text) of a one-column query run on dblink connection
-- p_conn, waiting as _remote_drain does.
CREATE FUNCTION pgshadow._remote_value(p_conn text, p_target text, p_sql text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v text;
BEGIN
    PERFORM pgshadow._remote_post(p_conn, p_target, p_sql);
    PERFORM pgshadow._remote_ready(p_conn, p_target);
    EXECUTE format('SELECT min(v) FROM %I.dblink_get_result(%L) AS r(v text)', pgshadow._dblink(), p_conn) INTO v;
    PERFORM pgshadow._remote_drain(p_conn, p_target);
    RETURN v;
END
$$;

-- Runs SQL on the open target connection and waits for it, naming target
-- and table on failure.
CREATE FUNCTION pgshadow._remote(p_sub pgshadow.subscription, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._remote_send(p_sub, p_sql);
    PERFORM pgshadow._remote_wait(p_sub);
END
$$;

-- Sends SQL on the open target connection and returns at once, so the caller
-- builds the next chunk while the target applies this one. At most one
-- statement string is in flight: _remote_wait must collect it before the
-- connection is used again. (A send itself blocks only while the target does
-- not read; the connection's tcp_user_timeout, see _connstr, bounds that.)
CREATE FUNCTION pgshadow._remote_send(p_sub pgshadow.subscription, p_sql text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._remote_post('pgshadow', p_sub.target, p_sql);
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
    v_ctx text;
BEGIN
    PERFORM pgshadow._remote_drain('pgshadow', p_sub.target);
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
