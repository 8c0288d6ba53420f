-- Sync mode: each statement's changes are applied on the target inside the
-- writing transaction, one round trip per statement (the keys come from the
-- statement's transition tables, not from one call per row). The remote
-- transaction commits from a deferred constraint trigger, the last thing that
-- runs before the local commit, so a target that fails or cannot be reached
-- aborts the local transaction with an error naming the target.
--
-- Limits, by design of what plain SQL can hook: the remote commit precedes the
-- local one, so a crash between the two, or a deferred constraint queued after
-- the last replicated statement that fails at COMMIT, leaves the target one
-- transaction ahead; ROLLBACK TO SAVEPOINT after a replicated statement is not
-- undone on the target; and a local ROLLBACK leaves the remote transaction
-- open until the session's next sync write or pgshadow.sync_idle_timeout
-- (default 2s, set on the remote as idle_in_transaction_session_timeout; a
-- local transaction that idles longer between sync writes then fails at its
-- next write or at COMMIT, never the other way round). shadow_compare() finds both; the writing role needs SELECT
-- on the table and a user mapping for the target's server.

-- One row per replicated statement and target of a transaction; its deferred
-- trigger commits the remote transaction. Deferred events fire in queue order,
-- so letting only the newest row commit puts the remote commit after every
-- deferred constraint queued up to the last replicated statement.
CREATE UNLOGGED TABLE pgshadow.sync_open (
    xid    xid8 NOT NULL DEFAULT pg_current_xact_id(),
    target text NOT NULL,
    seq    bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (xid, target, seq)
);
GRANT SELECT, INSERT ON pgshadow.sync_open TO PUBLIC;

CREATE FUNCTION pgshadow._sync_conn(p_target text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'pgshadow_sync_' || p_target
$$;

-- Commits the remote transaction at local pre-commit (for the newest row only).
CREATE FUNCTION pgshadow.sync_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pgshadow.sync_open o WHERE o.xid = NEW.xid AND o.target = NEW.target AND o.seq > NEW.seq) THEN
        DELETE FROM pgshadow.sync_open WHERE xid = NEW.xid AND target = NEW.target AND seq = NEW.seq;
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM pgshadow._remote_exec(pgshadow._sync_conn(NEW.target), NEW.target, 'COMMIT');
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'pgshadow: sync target "%" failed to commit: %', NEW.target, SQLERRM
            USING ERRCODE = SQLSTATE;
    END;
    DELETE FROM pgshadow.sync_open WHERE xid = NEW.xid AND target = NEW.target;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER sync_commit AFTER INSERT ON pgshadow.sync_open
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pgshadow.sync_commit();

-- Whether the current transaction truncated tracked table p_tbl as a whole
-- (its shadow holds a 'T' of this transaction). Definer: writers may not
-- read the shadow, and this tells only about the caller's own transaction.
CREATE FUNCTION pgshadow._truncated_here(p_tbl regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_found boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE shadow_op = ''T'' AND shadow_xid = pg_current_xact_id())',
                   (SELECT t.shadow FROM pgshadow.tracked t WHERE t.tbl = p_tbl))
       INTO v_found;
    RETURN v_found;
END
$$;

-- The sync capture: runs with the writer's rights (its user mapping, its reads).
-- Length: one trigger for every event of sync mode (insert, update,
-- delete, truncate of a table or one partition), each a short branch, with
-- the checks they share before them.
CREATE FUNCTION pgshadow.capture_sync() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp  -- and the fixed value settings (89_finish.sql)
AS $$
DECLARE
    v_sub    pgshadow.subscription;
    v_tr     pgshadow.tracked;
    v_conn   text;
    v_dbl    name;
    v_server name;
    v_open   boolean;
    v_sql    text;
    v_keys   text;
    v_nkeys  bigint;
    v_nrows  bigint;
    v_last   text[];
    v_karr   text[];
    v_rarr   text[];
    v_at     timestamptz[];
    v_detail text;
    -- the tracked table: a partition's writes are its root's
    v_tbl    regclass := coalesce(pg_partition_root(TG_RELID), TG_RELID);
BEGIN
    -- replicated changes are not shipped again, by the rule pgshadow.capture
    -- applies: the session's role (not current_user, which an owner's
    -- SECURITY DEFINER function would lend a plain writer) must own the table
    IF current_setting('pgshadow.origin', true) <> '' AND pgshadow._origin_skips(TG_RELID) THEN
        RETURN NULL;
    END IF;
    -- These triggers exist only while the table has a sync subscription, but
    -- a role without SELECT on the table sees none (row security on
    -- pgshadow.subscription) and could not read the rows to apply: its write
    -- would commit here and never reach the target. Refused instead.
    IF NOT has_table_privilege(v_tbl, 'SELECT') THEN
        RAISE EXCEPTION 'pgshadow: % has a sync subscription, and role % may not SELECT it: the write cannot be replicated',
            v_tbl, current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Sync mode applies each statement with the writer''s own rights: the writer needs SELECT on the table and a user mapping for the target''s server.';
    END IF;
    SELECT * INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = v_tbl;
    IF TG_OP = 'TRUNCATE' AND v_tbl <> TG_RELID THEN
        -- TRUNCATE fires on every member it empties. When it emptied the
        -- whole table, the root's trigger fired first and truncated the
        -- target (capture recorded 'T' in this transaction, and every write
        -- since was applied). A partition truncated by itself would have to
        -- delete its rows on the target, which are gone here: refused.
        IF pgshadow._truncated_here(v_tbl) THEN
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'pgshadow: cannot truncate partition % alone: % has a sync subscription, and its rows would stay on the target', TG_RELID::regclass, v_tbl
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'DELETE FROM the partition instead.';
    END IF;
    v_dbl := pgshadow._dblink();
    FOR v_sub IN SELECT * FROM pgshadow.subscription s WHERE s.tbl = v_tbl AND s.mode = 'sync' ORDER BY s.id LOOP
        -- the columns as they are (a column the target lacks fails the write there, naming it)
        v_sub.columns := pgshadow._shipped_columns(v_sub);
        v_conn := pgshadow._sync_conn(v_sub.target);
        v_sql := '';
        IF NOT EXISTS (SELECT FROM pgshadow.sync_open o WHERE o.xid = pg_current_xact_id() AND o.target = v_sub.target) THEN
            -- first replicated statement of this transaction for this target
            EXECUTE format('SELECT %L = ANY (coalesce(%I.dblink_get_connections(), ''{}''))', v_conn, v_dbl)
               INTO STRICT v_open;
            IF v_open THEN
                -- end what a transaction this session rolled back left open
                -- there; a connection that died meanwhile is opened afresh
                BEGIN
                    PERFORM pgshadow._remote_exec(v_conn, v_sub.target, 'ROLLBACK');
                EXCEPTION WHEN OTHERS THEN
                    -- (a target that did not answer is disconnected already)
                    EXECUTE format('SELECT %L = ANY (coalesce(%I.dblink_get_connections(), ''{}''))', v_conn, v_dbl)
                       INTO STRICT v_open;
                    IF v_open THEN
                        EXECUTE format('SELECT %I.dblink_disconnect(%L)', v_dbl, v_conn);
                    END IF;
                    v_open := false;
                END;
            END IF;
            IF NOT v_open THEN
                SELECT server INTO v_server FROM pgshadow.target WHERE name = v_sub.target;
                BEGIN
                    EXECUTE format('SELECT %I.dblink_connect(%L, $1)', v_dbl, v_conn) USING pgshadow._connstr(v_server);
                EXCEPTION WHEN OTHERS THEN
                    -- dblink gives the server's reason as the DETAIL: keep it
                    GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
                    RAISE EXCEPTION 'pgshadow: sync target "%" (foreign server "%") is unreachable: %', v_sub.target, v_server, SQLERRM
                        || CASE WHEN v_detail <> '' THEN ': ' || regexp_replace(btrim(v_detail, E' \n'), '\s*\n\s*', ' ', 'g') ELSE '' END
                        USING ERRCODE = SQLSTATE;
                END;
            END IF;
            -- a transaction rolled back here leaves no rollback hook behind: the
            -- target ends the orphan itself once it idles this long
            v_sql := v_sql || pgshadow._remote_begin()
                || format(' SET LOCAL idle_in_transaction_session_timeout = %L;',
                          coalesce(nullif(current_setting('pgshadow.sync_idle_timeout', true), ''), '2s'));
        END IF;
        INSERT INTO pgshadow.sync_open (target) VALUES (v_sub.target);

        IF TG_OP = 'TRUNCATE' THEN
            v_sql := v_sql || format(' TRUNCATE %I.%I;', v_sub.dest_schema, v_sub.dest_table);
        ELSE
            v_keys := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c);
            v_keys := 'SELECT *, statement_timestamp() AS shadow_at FROM (' || CASE TG_OP
                WHEN 'INSERT' THEN format('SELECT DISTINCT %s FROM pgshadow_new', v_keys)
                WHEN 'DELETE' THEN format('SELECT DISTINCT %s FROM pgshadow_old', v_keys)
                ELSE format('SELECT %1$s FROM pgshadow_new UNION SELECT %1$s FROM pgshadow_old', v_keys) END
                || ') k';
            EXECUTE pgshadow._chunk_sql(v_sub, v_keys) INTO v_nkeys, v_nrows, v_last, v_karr, v_rarr, v_at
              USING NULL::pg_snapshot, NULL::pg_snapshot, NULL::text[], NULL::integer;
            IF v_nkeys = 0 THEN
                CONTINUE WHEN v_sql = '';
            ELSE
                v_sql := v_sql || pgshadow._apply_sql(v_sub, v_tr, pgshadow._column_types(v_sub), v_karr,
                                                      CASE WHEN v_nrows > 0 THEN v_rarr END);
            END IF;
        END IF;
        BEGIN
            PERFORM pgshadow._remote_exec(v_conn, v_sub.target, v_sql);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'pgshadow: sync apply of % to %.% on target "%" failed: %',
                v_tbl, quote_ident(v_sub.dest_schema), quote_ident(v_sub.dest_table), v_sub.target, SQLERRM
                USING ERRCODE = SQLSTATE;
        END;
    END LOOP;
    RETURN NULL;
END
$$;
