-- shadow_status: one row per subscription, with what is still waiting;
-- shadow_progress: the copies and batches being shipped now.

-- Pending changes of a subscription: distinct keys not yet shipped and the age
-- of the oldest. Counts only; keys themselves stay private to the table owner.
-- p_all: the watermarks belong to another transaction-id history (see
-- pgshadow._history_break), so the next export re-baselines and ships every
-- key the shadow holds: all of them are pending.
CREATE FUNCTION pgshadow._pending(p_id bigint, p_all boolean DEFAULT false,
                                  OUT pending_keys bigint, OUT oldest_pending timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_sub pgshadow.subscription;
    v_tr  pgshadow.tracked;
BEGIN
    SELECT * INTO v_sub FROM pgshadow.subscription WHERE id = p_id;
    -- counts only, and only for those who may read the table
    IF NOT FOUND OR NOT coalesce(has_table_privilege(pgshadow._caller(), v_sub.tbl, 'SELECT'), false) THEN
        RETURN;
    END IF;
    SELECT * INTO v_tr FROM pgshadow.tracked WHERE tbl = v_sub.tbl;
    IF v_tr.shadow IS NULL OR to_regclass(format('pgshadow.%I', v_tr.shadow)) IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT count(DISTINCT (%s)) FILTER (WHERE shadow_op <> ''T'') + count(*) FILTER (WHERE shadow_op = ''T''),'
                   ' min(shadow_at) FROM pgshadow.%I WHERE $2 OR (%s)',
                   (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_tr.key_cols) c), v_tr.shadow,
                   pgshadow._unshipped_where('$1'))
       INTO pending_keys, oldest_pending USING v_sub.snapshot, p_all;
END
$$;

-- One row per subscription of a table the viewer may SELECT (see shadow_errors).
CREATE VIEW shadow_status WITH (security_barrier) AS
SELECT s.target,
       s.tbl                                         AS "table",
       format('%I.%I', s.dest_schema, s.dest_table)  AS dest,
       s.mode,
       p.pending_keys,
       now() - p.oldest_pending                      AS oldest_pending_age,
       s.batch_no                                    AS batches,
       s.keys_shipped,
       s.last_export,
       s.last_error,
       s.last_error_at,
       -- a full copy precedes the next batch: a deferred initial copy, or a
       -- backlog a purge stopped keeping (pgshadow.max_backlog_age)
       s.needs_copy,
       s.backlog_dropped_at,
       s.backlog_dropped_reason,
       -- the watermarks belong to another transaction-id history (a restore,
       -- a copy): the next export re-baselines and ships every held key
       b.history_break,
       h.rebaselined_at,
       h.rebaseline_reason,
       s.failures                                    -- failures ever recorded: a counter for monitoring
  FROM pgshadow.subscription s
 CROSS JOIN (SELECT pgshadow._history_break() AS history_break) b
  LEFT JOIN pgshadow.history h ON true
 CROSS JOIN LATERAL pgshadow._pending(s.id, b.history_break IS NOT NULL) p
 WHERE pg_catalog.has_table_privilege(s.tbl, 'SELECT');
COMMENT ON VIEW shadow_status IS 'pgshadow: per target and table, what is pending and how the last export went';
GRANT SELECT ON shadow_status TO PUBLIC;

-- One row per copy or batch being shipped in this database, of a table the
-- viewer may SELECT: rows sent so far, and the total (a copy: the table's
-- row estimate, total_estimated; a batch: its distinct keys; NULL: unknown).
-- started is NULL for another role's session unless the viewer may read
-- its statistics (pg_read_all_stats).
CREATE VIEW shadow_progress WITH (security_barrier) AS
SELECT a.pid,
       s.target,
       s.tbl                                         AS "table",
       format('%I.%I', s.dest_schema, s.dest_table)  AS dest,
       m.f[1]                                        AS phase,
       m.f[3]::bigint                                AS rows_done,
       nullif(m.f[5], '?')::bigint                   AS rows_total,
       m.f[4] = '~'                                  AS total_estimated,
       a.xact_start                                  AS started
  FROM pg_catalog.pg_stat_activity a
 CROSS JOIN LATERAL pg_catalog.regexp_match(a.application_name,
                                            '^pgshadow (copy|batch) #([0-9]+): ([0-9]+)/(~?)([0-9]+|\?) rows') AS m(f)
  JOIN pgshadow.subscription s ON s.id = m.f[2]::bigint
 WHERE a.datname = pg_catalog.current_database()
   AND pg_catalog.has_table_privilege(s.tbl, 'SELECT');
COMMENT ON VIEW shadow_progress IS 'pgshadow: copies and batches being shipped now, rows done and total, of the tables the viewer may SELECT';
GRANT SELECT ON shadow_progress TO PUBLIC;
