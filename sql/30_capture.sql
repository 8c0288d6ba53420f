-- The one capture trigger function every tracked table uses. Statement-level
-- AFTER triggers with transition tables call it, so a statement touching a
-- million rows costs one INSERT ... SELECT into the shadow table, not a million
-- trigger calls. It is SECURITY DEFINER because writers of a tracked table need
-- no rights on its shadow table; it finds the shadow by TG_RELID in the catalog
-- (never from trigger arguments), so attaching it to another table cannot write
-- into someone else's shadow.
CREATE FUNCTION pgshadow.capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v pgshadow.tracked%ROWTYPE;
BEGIN
    -- Sessions applying replicated changes mark themselves; their writes are
    -- not captured again (loop prevention without session_replication_role).
    -- Only the table's owner may skip capture so: the owner could drop the
    -- triggers anyway, a mere writer must not hide its writes from replication.
    IF current_setting('pgshadow.origin', true) <> ''
       AND pg_has_role(pgshadow._caller(), (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v FROM pgshadow.tracked t WHERE t.tbl = TG_RELID;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: table %.% has pgshadow capture triggers but is not tracked',
            TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING HINT = 'Run shadow_track() on it, or drop its pgshadow_capture_* triggers.';
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE v.ins_sql;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE v.upd_sql;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE v.del_sql;
    ELSE
        EXECUTE v.trunc_sql;
    END IF;
    IF v.notify THEN
        -- wakes `pgshadow run`; notifications are sent at commit, one per transaction
        PERFORM pg_notify('pgshadow', '');
    END IF;
    RETURN NULL;
END
$$;
