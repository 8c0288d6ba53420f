-- File mode: the pgshadow export command reads a batch through these, inside
-- one REPEATABLE READ transaction, writes the files, and only then calls
-- shadow_file_done(), so the watermark moves after the files are safely written.
-- The pending keys by the predicate push mode uses (_pending_where), rendered
-- by _keys_sql / _rows_sql with literal snapshots.

CREATE FUNCTION pgshadow.file_batches(p_target text)
RETURNS TABLE (sub_id bigint, tbl regclass, dest_schema name, dest_table name,
               key_columns name[], key_types text[], columns name[], column_types text[],
               batch_no bigint, old_snapshot pg_snapshot, new_snapshot pg_snapshot,
               full_copy boolean, keys_sql text, rows_sql text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id  bigint;
    v_sub pgshadow.subscription;
    v_tr  pgshadow.tracked;
    v_old text;
    v_new text;
BEGIN
    IF NOT EXISTS (SELECT FROM pgshadow.target t WHERE t.name = p_target) THEN
        RAISE EXCEPTION 'pgshadow: target "%" does not exist', p_target USING ERRCODE = 'undefined_object';
    END IF;
    IF current_setting('transaction_isolation') <> 'repeatable read' THEN
        RAISE EXCEPTION 'pgshadow: file export must run in a REPEATABLE READ transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    PERFORM pgshadow._gc();
    -- only the subscriptions the caller acts for (see shadow_export)
    FOR v_id IN SELECT s.id FROM pgshadow.subscription s
                 WHERE s.target = p_target AND pgshadow._may_export(pgshadow._caller(), s.tbl)
                 ORDER BY s.id LOOP
        -- an all-columns subscription's files carry the table's columns as
        -- they are now (the import applies them to the target, or fails there
        -- naming a column the target lacks)
        v_sub := pgshadow._current_columns(pgshadow._lock_subscription(v_id), false);
        PERFORM pgshadow._check_grantee_reads_all(v_sub.tbl);
        SELECT * INTO v_tr FROM pgshadow.tracked t WHERE t.tbl = v_sub.tbl;
        sub_id := v_id;
        tbl := v_sub.tbl;
        dest_schema := v_sub.dest_schema;
        dest_table := v_sub.dest_table;
        key_columns := v_tr.key_cols;
        key_types := v_tr.key_types;
        columns := v_sub.columns;
        column_types := pgshadow._column_types(v_sub);
        batch_no := v_sub.batch_no + 1;
        old_snapshot := v_sub.snapshot;
        new_snapshot := pgshadow._snapshot();
        v_old := quote_literal(old_snapshot::text) || '::pg_snapshot';
        v_new := quote_literal(new_snapshot::text) || '::pg_snapshot';
        EXECUTE format('SELECT EXISTS (SELECT FROM pgshadow.%I WHERE %s AND shadow_op = ''T'')',
                       v_tr.shadow, pgshadow._pending_where('$1', '$2'))
           INTO full_copy USING old_snapshot, new_snapshot;
        full_copy := full_copy OR v_sub.needs_copy;
        IF full_copy THEN
            keys_sql := NULL;
            rows_sql := pgshadow._rows_sql(v_sub, NULL, NULL, NULL);
        ELSE
            keys_sql := pgshadow._keys_sql(v_sub.tbl, v_old, v_new, NULL, NULL);
            rows_sql := pgshadow._rows_sql(v_sub, '(' || keys_sql || ') k', NULL, NULL);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Marks a file batch written: moves the watermark of one subscription. No
-- purge here: the export's REPEATABLE READ snapshot predates what others
-- committed meanwhile; the command purges after its commit (file_purge).
CREATE FUNCTION pgshadow.file_done(p_sub_id bigint, p_snapshot pg_snapshot, p_keys bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._advance(p_sub_id, p_snapshot, p_keys, 1);
END
$$;

-- Purges the shadow tables of a target's tables the caller owns, on current
-- state: run by `pgshadow export` and `ship` in a READ COMMITTED transaction
-- of its own after the batch committed (_purge does nothing under another
-- isolation level); so is a consistent push export (_export_consistent).
CREATE FUNCTION pgshadow.file_purge(p_target text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgshadow._purge(s.tbl) FROM pgshadow.subscription s
      WHERE s.target = p_target
        AND (pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = s.tbl), 'USAGE')
             OR pgshadow._export_granted(pgshadow._caller(), s.tbl));
END
$$;
