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
    v record;
BEGIN
    -- This runs once per statement on every tracked table: each IF below is a
    -- plain expression (PL/pgSQL evaluates those without the executor), and
    -- everything that needs a query is fetched by the one catalog lookup.

    -- Sessions applying replicated changes mark themselves; their writes are
    -- not captured again (loop prevention without session_replication_role).
    -- Only the table's owner may skip capture so: the owner could drop the
    -- triggers anyway, a mere writer must not hide its writes from replication.
    IF current_setting('pgshadow.origin', true) <> '' THEN
        IF pg_has_role(pgshadow._caller(), (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
            RETURN NULL;
        END IF;
    END IF;
    SELECT t.ins_sql, t.upd_sql, t.upd_new_sql, t.del_sql, t.trunc_sql, t.notify, t.gen,
           -- a BEFORE ROW UPDATE trigger may change a key without naming it
           (TG_OP = 'UPDATE' AND EXISTS (SELECT FROM pg_trigger g
                                          WHERE g.tgrelid = TG_RELID AND g.tgtype & 19 = 19 AND g.tgenabled <> 'D')) AS before_update
      INTO v FROM pgshadow.tracked t WHERE t.tbl = TG_RELID;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgshadow: table %.% has pgshadow capture triggers but is not tracked',
            TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING HINT = 'Run shadow_track() on it, or drop its pgshadow_capture_* triggers.';
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE v.ins_sql USING v.gen;
    ELSIF TG_OP = 'UPDATE' THEN
        -- The anti-join that finds old keys costs more than the rest of the
        -- capture; skip it when no key can have changed: the key trigger
        -- (UPDATE OF the key columns) did not fire for this table in this
        -- transaction, and no BEFORE ROW UPDATE trigger could have changed NEW.
        IF v.before_update OR current_setting('pgshadow.key_update', true) = TG_RELID::text THEN
            EXECUTE v.upd_sql USING v.gen;
        ELSE
            EXECUTE v.upd_new_sql USING v.gen;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE v.del_sql USING v.gen;
    ELSE
        EXECUTE v.trunc_sql USING v.gen;
    END IF;
    IF v.notify THEN
        -- wakes `pgshadow run`; notifications are sent at commit, one per transaction
        PERFORM pg_notify('pgshadow', '');
    END IF;
    RETURN NULL;
END
$$;

-- Fires (AFTER UPDATE OF the key columns, before pgshadow_capture_upd: triggers
-- fire in name order) when an UPDATE names a key column: tells capture() that
-- old keys must be recorded. Stays set until the transaction ends.
CREATE FUNCTION pgshadow.capture_key() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM set_config('pgshadow.key_update', TG_RELID::text, true);
    RETURN NULL;
END
$$;
